"""A small `helm` over the Helm 4 engine of helm-python-sdk: lint, template, and
install, upgrade and uninstall against the cluster of $KUBECONFIG.

Run through scripts/helm.sh, which installs the engine first. Output follows the helm
commands: `template` prints every rendered manifest as one YAML stream, each document
headed by `# Source: <template>`; `lint` prints the findings and exits 1 on an error
(or, with --strict, on a warning); the release commands print the release's name,
revision and status.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import helm_python as helm
from helm_python import _native

SEVERITY = {0: "UNKNOWN", 1: "INFO", 2: "WARNING", 3: "ERROR"}


def merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """Helm's coalescing of values files: maps merge key by key, anything else replaces."""
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def user_values(args: argparse.Namespace) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for path in args.values:
        values = merge(values, helm.values_from_yaml(Path(path).read_text()) or {})
    for assignment in args.set:
        values = merge(values, helm.parse_set_string(assignment))
    return values


def lint(args: argparse.Namespace) -> int:
    report = helm.lint(
        args.chart,
        user_values(args),
        strict=args.strict,
        kube_version=args.kube_version,
    )
    worst = 0
    for message in report.get("messages") or []:
        severity = int(message.get("severity", 0))
        worst = max(worst, severity)
        print(f"[{SEVERITY.get(severity, severity)}] {message.get('path')}: {message.get('error')}")
    for error in report.get("errors") or []:
        worst = 3
        print(f"[ERROR] {error}")
    failed = worst >= 3 or (args.strict and worst >= 2)
    print(f"{report.get('total_charts_linted', 0)} chart(s) linted, {'failed' if failed else 'ok'}")
    return 1 if failed else 0


def template(args: argparse.Namespace) -> int:
    chart = helm.Chart.load(args.chart)
    values = user_values(args)
    chart.validate_schema(values)
    options: dict[str, Any] = {
        "name": args.name,
        "namespace": args.namespace,
        "is_install": True,
    }
    if args.kube_version:
        options["kube_version"] = args.kube_version
    if args.api_versions:
        options["api_versions"] = [a for a in args.api_versions.split(",") if a]
    # The public Chart.render takes no kube_version or api_versions (the `helm template`
    # flags); the library's render call does, so it is called directly.
    rendered: dict[str, str] = json.loads(
        _native.call_string("helm_render", chart._raw(), json.dumps(values), json.dumps(options))
    )
    out = []
    for source in sorted(rendered):
        if source.endswith("NOTES.txt") or not rendered[source].strip():
            continue
        for document in rendered[source].split("\n---"):
            body = document.strip("\n")
            if body.strip() and any(
                line.strip() and not line.lstrip().startswith("#") for line in body.splitlines()
            ):
                out.append(f"---\n# Source: {source}\n{body}\n")
    sys.stdout.write("".join(out))
    return 0


def release(args: argparse.Namespace) -> int:
    config = helm.Config(
        kubeconfig_path=os.environ.get("KUBECONFIG") or None, namespace=args.namespace
    )
    if args.command == "uninstall":
        result = config.uninstall(args.release)
        print(f"release {args.release} uninstalled: {result.get('info', '')}")
        return 0
    values = user_values(args)
    if args.command == "install":
        result = config.install(
            args.chart,
            args.release,
            values,
            namespace=args.namespace,
            create_namespace=args.create_namespace,
            timeout=args.timeout,
        )
    else:
        result = config.upgrade(
            args.chart, args.release, values, namespace=args.namespace, timeout=args.timeout
        )
    print(f"release {result.get('name')} revision {result.get('revision')}: {result.get('status')}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(prog="helm.sh")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("version")
    for name in ("lint", "template"):
        sub = commands.add_parser(name)
        sub.add_argument("chart")
        sub.add_argument("-f", "--values", action="append", default=[])
        sub.add_argument("--set", action="append", default=[])
        sub.add_argument("--kube-version")
        if name == "lint":
            sub.add_argument("--strict", action="store_true")
        else:
            sub.add_argument("--name", default="customer-operator")
            sub.add_argument("--namespace", default="customer-operator")
            sub.add_argument("--api-versions", default="")
    for name in ("install", "upgrade", "uninstall"):
        sub = commands.add_parser(name)
        sub.add_argument("release")
        if name != "uninstall":
            sub.add_argument("chart")
            sub.add_argument("-f", "--values", action="append", default=[])
            sub.add_argument("--set", action="append", default=[])
            sub.add_argument("--timeout", type=int, default=120)
        if name == "install":
            sub.add_argument("--create-namespace", action="store_true")
        sub.add_argument("--namespace", "-n", default="default")
    args = parser.parse_args()
    try:
        if args.command == "version":
            print(helm.helm_sdk_version())
            return 0
        if args.command in ("install", "upgrade", "uninstall"):
            return release(args)
        return lint(args) if args.command == "lint" else template(args)
    except helm.HelmError as error:
        print(f"Error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
