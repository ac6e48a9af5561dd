#!/usr/bin/env bash
# Local Kubernetes test control plane for the integration tests:
# etcd + kube-apiserver + kube-controller-manager, listening on 127.0.0.1 only, with
# kubectl beside them. The binaries are built from Go modules (scripts/k8s/) once per
# version and cached outside the repo.
#
#   scripts/control-plane.sh deps          install the Debian packages needed (apt-get)
#   scripts/control-plane.sh test-deps     install what the offline tests need (lua5.1)
#   scripts/control-plane.sh image-deps    install what scripts/image.sh needs (umoci, skopeo, musl-tools)
#   scripts/control-plane.sh build         build the binaries of the selected version once (cached)
#   scripts/control-plane.sh up            deps + build + start (idempotent); prints the admin kubeconfig path
#   scripts/control-plane.sh down [--purge]  stop; --purge also deletes the etcd data
#   scripts/control-plane.sh env           print `export ...` lines to eval (KUBECONFIG, PATH with kubectl)
#   scripts/control-plane.sh status        show what runs; exit 1 unless all is healthy
#   scripts/control-plane.sh version       print the selected Kubernetes version (e.g. v1.37.2)
#   scripts/control-plane.sh versions      print every version scripts/k8s/ pins, newest first
#   scripts/control-plane.sh bin           print the directory of the running (else the selected) version's binaries
#   scripts/control-plane.sh stop etcd|apiserver    stop one component (fault tests)
#   scripts/control-plane.sh start etcd|apiserver   start it again and wait until it serves
#
# Environment:
#   CUSTOMER_OPERATOR_K8S_VERSION  the Kubernetes version: a minor (1.33, 1.37) or a full
#                             version pinned under scripts/k8s/ (default: the newest pinned)
#   CUSTOMER_OPERATOR_CACHE   cache dir (default ~/.cache/customer-operator); binaries in
#                             k8s-<version>/bin (kube-apiserver, kube-controller-manager, kubectl, etcd)
#   CUSTOMER_OPERATOR_STATE   state dir (default ~/.cache/customer-operator/cluster): pids, logs,
#                             certs, tokens.csv, etcd data, kubeconfig, kubeconfig-<user>, version
#   KUBEBUILDER_ASSETS        use kube-apiserver, etcd (and kube-controller-manager, kubectl if present) from here
#   CUSTOMER_OPERATOR_TEST_CLUSTER=existing   use the cluster $KUBECONFIG names; start nothing
#   CUSTOMER_OPERATOR_ETCD_PORT (12379, peer port +1), CUSTOMER_OPERATOR_APISERVER_PORT (16443),
#   CUSTOMER_OPERATOR_KCM_PORT (16457)
#   CUSTOMER_OPERATOR_APISERVER_ARGS  more kube-apiserver flags, space-separated (the flood
#                             test's small --max-requests-inflight)
set -euo pipefail

WRAPPERS=$(cd "$(dirname "$0")" && pwd)/k8s
readonly WRAPPERS

CACHE_DIR=${CUSTOMER_OPERATOR_CACHE:-$HOME/.cache/customer-operator}
STATE_DIR=${CUSTOMER_OPERATOR_STATE:-$HOME/.cache/customer-operator/cluster}

ETCD_PORT=${CUSTOMER_OPERATOR_ETCD_PORT:-12379}
ETCD_PEER_PORT=$((ETCD_PORT + 1))
API_PORT=${CUSTOMER_OPERATOR_APISERVER_PORT:-16443}
KCM_PORT=${CUSTOMER_OPERATOR_KCM_PORT:-16457}
readonly HOST=127.0.0.1
readonly SERVICE_CIDR=10.0.0.0/24
readonly SERVICE_IP=10.0.0.1
readonly SA_ISSUER=https://kubernetes.default.svc.cluster.local
readonly USERS=(alice bob carol dave)
readonly CLUSTER_NAME=customer-operator-test
# Controllers that make namespace deletion finish and garbage collection work.
readonly KCM_CONTROLLERS=namespace,garbagecollector,resourcequota,serviceaccount-token,serviceaccount,clusterrole-aggregation,root-ca-cert-publisher

# Packages needed to run and to build (Go itself comes with the machine: 1.26 or newer).
readonly RUNTIME_PKGS=(openssl curl jq ca-certificates util-linux)
# What the offline tests need besides Rust: Lua 5.1 (Argo CD runs health checks with
# gopher-lua, a Lua 5.1), for tests/offline/health_checks.rs.
readonly TEST_PKGS=(lua5.1)
# What scripts/image.sh and tests/image.rs need: umoci builds and unpacks OCI images,
# skopeo inspects them, musl-tools compiles ring's C for the static binary.
readonly IMAGE_PKGS=(umoci skopeo musl-tools jq ca-certificates)

CLEANUP=()
FRESH_ETCD=false
trap 'if ((${#CLEANUP[@]})); then rm -rf -- "${CLEANUP[@]}"; fi' EXIT

log() { printf 'control-plane: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

as_root() {
  if [[ $(id -u) == 0 ]]; then "$@"
  elif command -v sudo >/dev/null; then sudo "$@"
  else die "need root (or sudo) to run: $*"
  fi
}

existing_mode() { [[ ${CUSTOMER_OPERATOR_TEST_CLUSTER:-} == existing ]]; }

# ---------------------------------------------------------------- deps

pkg_installed() { [[ $(dpkg-query -W -f='${Status}' "$1" 2>/dev/null) == "install ok installed" ]]; }

# Install the given packages that are missing; apt-get update only if something is missing.
ensure_pkgs() {
  local missing=() p
  for p in "$@"; do pkg_installed "$p" || missing+=("$p"); done
  ((${#missing[@]})) || return 0
  log "installing ${missing[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq ||
    log "warning: apt-get update failed; trying to install anyway"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2 ||
    die "apt-get install ${missing[*]} failed"
}

cmd_deps() {
  existing_mode && return 0
  ensure_pkgs "${RUNTIME_PKGS[@]}"
}

# The packages the offline tests need, on any machine the tests run on.
cmd_test_deps() {
  ensure_pkgs "${TEST_PKGS[@]}"
}

# The packages the image build needs.
cmd_image_deps() {
  ensure_pkgs "${IMAGE_PKGS[@]}"
}

# ---------------------------------------------------------------- versions

# Every Kubernetes version pinned under scripts/k8s/<minor>/kubernetes, newest first.
pinned_versions() {
  local mod
  for mod in "$WRAPPERS"/*/kubernetes/go.mod; do
    [[ -f $mod ]] || continue
    awk '$1 == "k8s.io/kubernetes" && $2 ~ /^v/ { print $2 } $1 == "require" && $2 == "k8s.io/kubernetes" { print $3 }' "$mod"
  done | sort -t. -k2,2nr -k3,3nr
}

# The selected version's wrapper directory (scripts/k8s/<minor>) and versions.
select_version() {
  [[ -n ${K8S_VERSION:-} ]] && return 0
  local want=${CUSTOMER_OPERATOR_K8S_VERSION:-} v found=""
  want=${want#v}
  while read -r v; do
    if [[ -z $want || ${v#v} == "$want" || ${v#v} == "$want".* ]]; then found=$v; break; fi
  done < <(pinned_versions)
  [[ -n $found ]] || die "CUSTOMER_OPERATOR_K8S_VERSION=$want: not pinned under scripts/k8s/ (pinned: $(pinned_versions | tr '\n' ' '))"
  K8S_VERSION=$found
  local minor=${found#v}
  minor=${minor%.*}
  WRAPPER=$WRAPPERS/$minor
  ETCD_VERSION=$(awk '$1 ~ /^go\.etcd\.io\/etcd\/server\// && $2 ~ /^v/ { print $2 } $1 == "require" && $2 ~ /^go\.etcd\.io\/etcd\/server\// { print $3 }' "$WRAPPER/etcd/go.mod")
  [[ -n $ETCD_VERSION ]] || die "no etcd version in $WRAPPER/etcd/go.mod"
  K8S_BIN=$CACHE_DIR/k8s-$K8S_VERSION/bin
  ETCD_BUILD_BIN=$CACHE_DIR/etcd-$ETCD_VERSION/bin
}

# ---------------------------------------------------------------- build

# Go for the builds: the machine's, 1.26 or newer (GOTOOLCHAIN=local: nothing is fetched).
ensure_go() {
  export GOTOOLCHAIN=${GOTOOLCHAIN:-local}
  command -v go >/dev/null || { [[ -x /usr/local/go/bin/go ]] && export PATH=/usr/local/go/bin:$PATH; }
  command -v go >/dev/null || die "Go 1.26 or newer is needed to build the control plane (none on PATH)"
  local v
  v=$(go env GOVERSION)
  if ! [[ $v =~ ^go1\.([0-9]+) ]] || ((BASH_REMATCH[1] < 26)); then die "Go 1.26 or newer is needed, found $v"; fi
}

# `go build` of a wrapper's tools into a fresh directory, then renamed into place, so a
# half-done build is never taken for a finished one.
go_build_into() {
  local dest=$1 wrapper=$2 ldflags=$3; shift 3
  local buildlog=${dest%.new}.build.log tmp start=$SECONDS
  mkdir -p "$(dirname "$dest")"
  tmp=$(mktemp -d "$dest.XXXXXX")
  CLEANUP+=("$tmp")
  log "building $* with $(go env GOVERSION) (log: $buildlog)"
  if ! (cd "$wrapper" && CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$tmp/" "$@") >"$buildlog" 2>&1; then
    tail -n 30 "$buildlog" >&2
    die "go build in $wrapper failed; full log: $buildlog"
  fi
  chmod 0755 "$tmp"
  rm -rf "$dest"
  mv "$tmp" "$dest"
  log "built in $(((SECONDS - start) / 60))m$(((SECONDS - start) % 60))s: $dest"
}

# -X flags that make /version report the real version: both version packages, or
# kubectl and the apiserver disagree, and without a minor every version check breaks.
version_ldflags() {
  local v=${K8S_VERSION#v} pkg flags="-s -w"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    flags+=" -X $pkg.gitVersion=v$v -X $pkg.gitMajor=${v%%.*} -X $pkg.gitMinor=$(cut -d. -f2 <<<"$v")"
    flags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  echo "$flags"
}

k8s_bins_present() {
  [[ -x $K8S_BIN/kube-apiserver && -x $K8S_BIN/kube-controller-manager && -x $K8S_BIN/kubectl && -x $K8S_BIN/etcd ]]
}

cmd_build() {
  existing_mode && return 0
  [[ -n ${KUBEBUILDER_ASSETS:-} ]] && { resolve_bins; return 0; }
  select_version
  k8s_bins_present && return 0
  mkdir -p "$CACHE_DIR"
  # One build at a time; a second caller waits and then finds the binaries.
  exec 8>"$CACHE_DIR/.build-$K8S_VERSION.lock"
  if ! flock -n 8; then
    log "another build of $K8S_VERSION is running; waiting for it"
    flock 8
  fi
  k8s_bins_present && return 0
  ensure_go
  log "building the $K8S_VERSION control plane from Go modules; on 2 cores about 15 minutes the first time"
  if [[ ! -x $ETCD_BUILD_BIN/etcd ]]; then
    go_build_into "$ETCD_BUILD_BIN" "$WRAPPER/etcd" "-s -w" .
  fi
  go_build_into "$K8S_BIN.new" "$WRAPPER/kubernetes" "$(version_ldflags)" \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kubectl
  ln -s "$ETCD_BUILD_BIN/etcd" "$K8S_BIN.new/etcd"
  rm -rf "$K8S_BIN"
  mv "$K8S_BIN.new" "$K8S_BIN"
}

# Binaries: from KUBEBUILDER_ASSETS when set, else the cached build of the selected version.
resolve_bins() {
  if [[ -n ${KUBEBUILDER_ASSETS:-} ]]; then
    [[ -x $KUBEBUILDER_ASSETS/kube-apiserver ]] || die "no kube-apiserver in KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS"
    [[ -x $KUBEBUILDER_ASSETS/etcd ]] || die "no etcd in KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS"
    BIN_DIR=$KUBEBUILDER_ASSETS
    KCM_BIN=""
    if [[ -x $KUBEBUILDER_ASSETS/kube-controller-manager ]]; then KCM_BIN=$KUBEBUILDER_ASSETS/kube-controller-manager; fi
  else
    select_version
    BIN_DIR=$K8S_BIN
    KCM_BIN=$K8S_BIN/kube-controller-manager
  fi
  APISERVER_BIN=$BIN_DIR/kube-apiserver
  ETCD_BIN=$BIN_DIR/etcd
}

# ---------------------------------------------------------------- processes

pidfile() { echo "$STATE_DIR/$1.pid"; }

# Pid of a running component (checked against its command line), or failure.
running_pid() {
  local f pid argv0
  f=$(pidfile "$1")
  [[ -s $f ]] || return 1
  pid=$(<"$f")
  [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
  IFS= read -r -d '' argv0 <"/proc/$pid/cmdline" 2>/dev/null || return 1
  [[ ${argv0##*/} == "$1" ]] || return 1
  echo "$pid"
}

# Start a component detached from this shell (own session); it writes its own pid file.
start_detached() {
  local name=$1; shift
  local logf=$STATE_DIR/$name.log pf
  pf=$(pidfile "$name")
  [[ -f $logf ]] && mv -f "$logf" "$logf.prev"
  rm -f "$pf"
  # The daemon must not inherit the lock fds 8/9, or it would hold the locks for its whole life.
  # shellcheck disable=SC2016 # expanded by the inner shell
  setsid bash -c 'echo $$ >"$1"; shift; exec "$@"' "start-$name" "$pf" "$@" </dev/null >"$logf" 2>&1 8>&- 9>&- &
  # Wait for the exec, not only the pid file: until then the pid's command line is bash's,
  # and a check of the component (running_pid) would take it for gone.
  local _
  for _ in $(seq 100); do
    running_pid "$name" >/dev/null && return 0
    [[ -s $pf ]] && ! kill -0 "$(<"$pf")" 2>/dev/null && break
    sleep 0.1
  done
  tail -n 30 "$logf" >&2 || true
  die "$name did not start; see $logf"
}

stop_component() {
  local name=$1 pid _
  pid=$(running_pid "$name") || { rm -f "$(pidfile "$name")"; return 0; }
  log "stopping $name (pid $pid)"
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then
    log "$name did not stop in 10s; killing it"
    kill -9 "$pid" 2>/dev/null || true
    for _ in $(seq 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -f "$(pidfile "$name")"
}

# Wait until `check` succeeds, or fail with the component's log tail.
wait_for() {
  local what=$1 timeout=$2 name=$3; shift 3
  local deadline=$((SECONDS + timeout))
  until "$@"; do
    if [[ -n $name ]] && ! running_pid "$name" >/dev/null; then
      tail -n 30 "$STATE_DIR/$name.log" >&2 || true
      die "$name exited while waiting for $what; log: $STATE_DIR/$name.log"
    fi
    if ((SECONDS >= deadline)); then
      [[ -n $name ]] && { tail -n 30 "$STATE_DIR/$name.log" >&2 || true; }
      die "timed out after ${timeout}s waiting for $what"
    fi
    sleep 0.3
  done
}

# ---------------------------------------------------------------- certs, tokens, kubeconfigs

ensure_pki() {
  local pki=$STATE_DIR/pki
  mkdir -p "$pki"
  chmod 700 "$pki"
  if [[ ! -s $pki/ca.crt || ! -s $pki/ca.key ]]; then
    log "creating CA and serving certificate"
    openssl genrsa -out "$pki/ca.key" 2048 2>/dev/null
    openssl req -x509 -new -key "$pki/ca.key" -sha256 -days 3650 -subj "/CN=$CLUSTER_NAME-ca" \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
      -out "$pki/ca.crt"
    rm -f "$pki/apiserver.crt"
  fi
  if [[ ! -s $pki/apiserver.crt || ! -s $pki/apiserver.key ]]; then
    openssl genrsa -out "$pki/apiserver.key" 2048 2>/dev/null
    cat >"$pki/apiserver.ext" <<EOF
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:$HOST,IP:$SERVICE_IP,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local
EOF
    openssl req -new -key "$pki/apiserver.key" -subj "/CN=kube-apiserver" -out "$pki/apiserver.csr"
    openssl x509 -req -in "$pki/apiserver.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
      -sha256 -days 3650 -extfile "$pki/apiserver.ext" -out "$pki/apiserver.crt" 2>/dev/null
  fi
  if [[ ! -s $pki/sa.key ]]; then
    openssl genrsa -out "$pki/sa.key" 2048 2>/dev/null
    openssl rsa -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null
  fi
}

# tokens.csv: token,user,uid[,"groups"]. admin is in system:masters; the test users in no group.
ensure_tokens() {
  local f=$STATE_DIR/tokens.csv u
  [[ -s $f ]] && return 0
  {
    printf '%s,admin,admin,"system:masters"\n' "$(openssl rand -hex 24)"
    for u in "${USERS[@]}"; do printf '%s,%s,%s\n' "$(openssl rand -hex 24)" "$u" "$u"; done
  } >"$f.tmp"
  chmod 600 "$f.tmp"
  mv -f "$f.tmp" "$f"
}

token_of() { awk -F, -v u="$1" '$2 == u { print $1; exit }' "$STATE_DIR/tokens.csv"; }

write_kubeconfig() {
  local user=$1 out=$2 ca token
  ca=$(base64 -w0 <"$STATE_DIR/pki/ca.crt")
  token=$(token_of "$user")
  [[ -n $token ]] || die "no token for $user in $STATE_DIR/tokens.csv"
  cat >"$out.tmp" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: $CLUSTER_NAME
  cluster:
    server: https://$HOST:$API_PORT
    certificate-authority-data: $ca
users:
- name: $user
  user:
    token: $token
contexts:
- name: $user@$CLUSTER_NAME
  context:
    cluster: $CLUSTER_NAME
    user: $user
current-context: $user@$CLUSTER_NAME
EOF
  chmod 600 "$out.tmp"
  mv -f "$out.tmp" "$out"
}

write_kubeconfigs() {
  local u
  write_kubeconfig admin "$STATE_DIR/kubeconfig"
  for u in "${USERS[@]}"; do write_kubeconfig "$u" "$STATE_DIR/kubeconfig-$u"; done
  # Header file so curl does not put the token on its command line.
  printf 'Authorization: Bearer %s\n' "$(token_of admin)" >"$STATE_DIR/pki/admin-header"
}

# ---------------------------------------------------------------- health

api() { # api METHOD PATH [curl args...]: prints body; fails on HTTP errors
  local method=$1 path=$2; shift 2
  curl -sSf --max-time 10 --cacert "$STATE_DIR/pki/ca.crt" -H "@$STATE_DIR/pki/admin-header" \
    -X "$method" "$@" "https://$HOST:$API_PORT$path"
}
api_code() { # HTTP status of GET PATH
  curl -s -o /dev/null -w '%{http_code}' --max-time 10 --cacert "$STATE_DIR/pki/ca.crt" \
    -H "@$STATE_DIR/pki/admin-header" "https://$HOST:$API_PORT$1" || true
}

etcd_healthy() { [[ $(curl -sf --max-time 3 "http://$HOST:$ETCD_PORT/health" 2>/dev/null) == *'"health":"true"'* ]]; }
apiserver_ready() { [[ -s $STATE_DIR/pki/admin-header ]] && [[ $(api GET /readyz 2>/dev/null) == ok ]]; }
kcm_healthy() { [[ $(curl -sk --max-time 3 "https://$HOST:$KCM_PORT/healthz" 2>/dev/null) == ok ]]; }
default_sa_exists() { [[ $(api_code /api/v1/namespaces/default/serviceaccounts/default) == 200 ]]; }

# Create and delete a namespace; succeeds once the namespace controller has removed it.
namespace_deletion_works() {
  local name deadline
  name=$(api POST /api/v1/namespaces -H 'Content-Type: application/json' \
    -d '{"apiVersion":"v1","kind":"Namespace","metadata":{"generateName":"control-plane-probe-"}}' |
    jq -r .metadata.name) || die "cannot create a probe namespace"
  api DELETE "/api/v1/namespaces/$name" >/dev/null || die "cannot delete probe namespace $name"
  deadline=$((SECONDS + 60))
  until [[ $(api_code "/api/v1/namespaces/$name") == 404 ]]; do
    ((SECONDS < deadline)) || die "probe namespace $name was not removed within 60s (namespace controller?); log: $STATE_DIR/kube-controller-manager.log"
    sleep 0.2
  done
}

# ---------------------------------------------------------------- up / down

start_etcd() {
  if running_pid etcd >/dev/null; then
    wait_for "etcd health" 30 etcd etcd_healthy
    return 0
  fi
  log "starting etcd on $HOST:$ETCD_PORT"
  # A quota of 8 GiB instead of etcd's 2: the 10,000-customer benchmark holds about
  # 30,000 namespaces with their objects and the history between compactions.
  [[ -d $STATE_DIR/etcd/member ]] || FRESH_ETCD=true
  mkdir -p "$STATE_DIR/etcd"
  chmod 700 "$STATE_DIR/etcd"
  start_detached etcd "$ETCD_BIN" \
    --name "$CLUSTER_NAME" \
    --data-dir "$STATE_DIR/etcd" \
    --listen-client-urls "http://$HOST:$ETCD_PORT" \
    --advertise-client-urls "http://$HOST:$ETCD_PORT" \
    --listen-peer-urls "http://$HOST:$ETCD_PEER_PORT" \
    --initial-advertise-peer-urls "http://$HOST:$ETCD_PEER_PORT" \
    --initial-cluster "$CLUSTER_NAME=http://$HOST:$ETCD_PEER_PORT" \
    --quota-backend-bytes 8589934592 \
    --logger zap --log-level warn
  wait_for "etcd health" 30 etcd etcd_healthy
}

start_apiserver() {
  if running_pid kube-apiserver >/dev/null; then
    wait_for "kube-apiserver /readyz" 90 kube-apiserver apiserver_ready
    return 0
  fi
  log "starting kube-apiserver on https://$HOST:$API_PORT"
  local pki=$STATE_DIR/pki extra=()
  read -ra extra <<<"${CUSTOMER_OPERATOR_APISERVER_ARGS:-}"
  # Endpoint reconciler off: Endpoints may not hold a loopback address, it would fail every 10s.
  start_detached kube-apiserver "$APISERVER_BIN" \
    --bind-address="$HOST" --advertise-address="$HOST" --secure-port="$API_PORT" \
    --etcd-servers="http://$HOST:$ETCD_PORT" \
    --tls-cert-file="$pki/apiserver.crt" --tls-private-key-file="$pki/apiserver.key" \
    --client-ca-file="$pki/ca.crt" \
    --token-auth-file="$STATE_DIR/tokens.csv" \
    --authorization-mode=RBAC \
    --service-account-issuer="$SA_ISSUER" --api-audiences="$SA_ISSUER" \
    --service-account-key-file="$pki/sa.pub" --service-account-signing-key-file="$pki/sa.key" \
    --service-cluster-ip-range="$SERVICE_CIDR" \
    --endpoint-reconciler-type=none \
    "${extra[@]}"
  wait_for "kube-apiserver /readyz" 90 kube-apiserver apiserver_ready
}

start_kcm() {
  if [[ -z $KCM_BIN ]]; then
    log "warning: no kube-controller-manager in KUBEBUILDER_ASSETS: namespaces will not finish deleting, no garbage collection"
    return 0
  fi
  if running_pid kube-controller-manager >/dev/null; then
    wait_for "kube-controller-manager /healthz" 60 kube-controller-manager kcm_healthy
    return 0
  fi
  log "starting kube-controller-manager (healthz https://$HOST:$KCM_PORT/healthz)"
  local pki=$STATE_DIR/pki
  start_detached kube-controller-manager "$KCM_BIN" \
    --kubeconfig="$STATE_DIR/kubeconfig" \
    --bind-address="$HOST" --secure-port="$KCM_PORT" --cert-dir="$STATE_DIR/kcm-certs" \
    --controllers="$KCM_CONTROLLERS" \
    --service-account-private-key-file="$pki/sa.key" --root-ca-file="$pki/ca.crt" \
    --use-service-account-credentials=false \
    --leader-elect=false \
    --kube-api-qps=100 --kube-api-burst=200
  wait_for "kube-controller-manager /healthz" 60 kube-controller-manager kcm_healthy
  wait_for "serviceaccount default/default" 60 kube-controller-manager default_sa_exists
  # On a new cluster, prove that namespace deletion completes (takes ~5s: the namespace
  # controller waits 5s before it handles a deletion).
  if $FRESH_ETCD; then namespace_deletion_works; fi
}

# Fail if one of our processes listens anywhere but on 127.0.0.1.
check_loopback_only() {
  command -v ss >/dev/null || return 0
  local name pid bad=""
  for name in etcd kube-apiserver kube-controller-manager; do
    pid=$(running_pid "$name") || continue
    bad+=$(ss -Hltnp | awk -v p="pid=$pid," 'index($0, p) && $4 !~ /^127\.0\.0\.1:/ { print "  " $4 }')
  done
  [[ -z $bad ]] || die "a control-plane process listens beyond 127.0.0.1 (restart it: $0 down; $0 up):"$'\n'"$bad"
}

# Take the state lock (serialises concurrent up/down calls).
lock_state() {
  mkdir -p "$STATE_DIR"
  chmod 700 "$STATE_DIR"
  exec 9>"$STATE_DIR/control-plane.lock"
  flock 9
}

check_existing() {
  [[ -n ${KUBECONFIG:-} ]] || die "CUSTOMER_OPERATOR_TEST_CLUSTER=existing needs KUBECONFIG"
  local f files found=false
  IFS=: read -ra files <<<"$KUBECONFIG"
  for f in "${files[@]}"; do [[ -r $f ]] && found=true; done
  $found || die "KUBECONFIG=$KUBECONFIG: no such file"
  command -v kubectl >/dev/null || die "kubectl is needed to check KUBECONFIG=$KUBECONFIG"
  kubectl get --raw=/readyz >/dev/null || die "cannot reach the cluster of KUBECONFIG=$KUBECONFIG"
}

cmd_up() {
  if existing_mode; then
    check_existing
    echo "$KUBECONFIG"
    return 0
  fi
  cmd_deps
  cmd_build
  resolve_bins
  [[ -x $ETCD_BIN ]] || die "etcd not found at $ETCD_BIN"
  lock_state
  local selected=${K8S_VERSION:-$BIN_DIR} recorded=""
  [[ -s $STATE_DIR/version ]] && recorded=$(<"$STATE_DIR/version")
  if [[ -n $recorded && $recorded != "$selected" ]] && running_pid kube-apiserver >/dev/null; then
    die "the control plane in $STATE_DIR runs $recorded, not $selected: stop it first ($0 down)"
  fi
  echo "$selected" >"$STATE_DIR/version"
  echo "$BIN_DIR" >"$STATE_DIR/bin"
  ensure_pki
  ensure_tokens
  write_kubeconfigs
  start_etcd
  start_apiserver
  start_kcm
  check_loopback_only
  log "ready: export KUBECONFIG=$STATE_DIR/kubeconfig"
  echo "$STATE_DIR/kubeconfig"
}

cmd_down() {
  local purge=false
  [[ ${1:-} == --purge ]] && purge=true
  [[ $# -gt 1 || ( $# == 1 && $purge == false ) ]] && die "usage: down [--purge]"
  if existing_mode; then log "CUSTOMER_OPERATOR_TEST_CLUSTER=existing: nothing to stop"; return 0; fi
  [[ -d $STATE_DIR ]] || return 0
  lock_state
  stop_component kube-controller-manager
  stop_component kube-apiserver
  stop_component etcd
  if $purge; then
    log "deleting etcd data $STATE_DIR/etcd"
    rm -rf "$STATE_DIR/etcd"
  fi
}

cmd_env() {
  if existing_mode; then
    [[ -n ${KUBECONFIG:-} ]] || die "CUSTOMER_OPERATOR_TEST_CLUSTER=existing needs KUBECONFIG"
    printf 'export KUBECONFIG=%q\n' "$KUBECONFIG"
    return 0
  fi
  running_pid kube-apiserver >/dev/null || log "warning: the control plane is not running (run: $0 up)"
  printf 'export KUBECONFIG=%q\n' "$STATE_DIR/kubeconfig"
  printf 'export CUSTOMER_OPERATOR_STATE=%q\n' "$STATE_DIR"
  # kubectl of the running version, ahead of any other on PATH.
  # shellcheck disable=SC2016 # $PATH is the caller's, expanded where this is eval'd
  if [[ -s $STATE_DIR/bin ]]; then printf 'export PATH=%q:"$PATH"\n' "$(<"$STATE_DIR/bin")"; fi
}

cmd_version() {
  existing_mode && die "CUSTOMER_OPERATOR_TEST_CLUSTER=existing: the version is the cluster's"
  select_version
  echo "$K8S_VERSION"
}

# The binaries of the running control plane (as recorded by `up`), else of the selected version.
cmd_bin() {
  existing_mode && die "CUSTOMER_OPERATOR_TEST_CLUSTER=existing: no binaries of ours"
  if [[ -s $STATE_DIR/bin ]] && running_pid kube-apiserver >/dev/null; then cat "$STATE_DIR/bin"; return 0; fi
  resolve_bins
  echo "$BIN_DIR"
}

cmd_status() {
  if existing_mode; then
    check_existing
    log "existing cluster reachable: KUBECONFIG=$KUBECONFIG"
    return 0
  fi
  resolve_bins
  local ok=true name pid health where
  for name in etcd kube-apiserver kube-controller-manager; do
    if [[ $name == kube-controller-manager && -z $KCM_BIN ]]; then continue; fi
    case $name in
      etcd) health=etcd_healthy; where="http://$HOST:$ETCD_PORT" ;;
      kube-apiserver) health=apiserver_ready; where="https://$HOST:$API_PORT" ;;
      *) health=kcm_healthy; where="https://$HOST:$KCM_PORT/healthz" ;;
    esac
    if pid=$(running_pid "$name"); then
      if $health; then echo "$name: running (pid $pid) healthy at $where"
      else echo "$name: running (pid $pid) NOT healthy at $where"; ok=false; fi
    else
      echo "$name: stopped"; ok=false
    fi
  done
  echo "state: $STATE_DIR"
  echo "kubeconfig: $STATE_DIR/kubeconfig (users: admin ${USERS[*]}: $STATE_DIR/kubeconfig-<user>)"
  echo "version: $(cat "$STATE_DIR/version" 2>/dev/null || echo unknown)"
  echo "binaries: apiserver=$APISERVER_BIN kcm=${KCM_BIN:-none} etcd=$ETCD_BIN"
  $ok
}

component_name() {
  case ${1:-} in
    etcd) echo etcd ;;
    apiserver) echo kube-apiserver ;;
    *) die "usage: stop|start etcd|apiserver" ;;
  esac
}

# Stop one component, for fault tests: the others keep running.
cmd_stop() {
  local name
  name=$(component_name "${1:-}")
  existing_mode && die "CUSTOMER_OPERATOR_TEST_CLUSTER=existing: not stopping anything"
  lock_state
  stop_component "$name"
}

# Start one stopped component again, with the settings of `up`.
cmd_start() {
  local name
  name=$(component_name "${1:-}")
  existing_mode && die "CUSTOMER_OPERATOR_TEST_CLUSTER=existing: not starting anything"
  resolve_bins
  lock_state
  case $name in
    etcd) start_etcd ;;
    kube-apiserver) start_apiserver ;;
  esac
}

usage() {
  sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
  exit 2
}

main() {
  local cmd=${1:-}
  [[ $# -gt 0 ]] && shift
  case $cmd in
    deps) cmd_deps ;;
    test-deps) cmd_test_deps ;;
    image-deps) cmd_image_deps ;;
    build) cmd_build ;;
    up) cmd_up ;;
    down) cmd_down "$@" ;;
    env) cmd_env ;;
    status) cmd_status ;;
    version) cmd_version ;;
    versions) pinned_versions ;;
    bin) cmd_bin ;;
    stop) cmd_stop "$@" ;;
    start) cmd_start "$@" ;;
    -h|--help|help) usage ;;
    *) usage ;;
  esac
}

main "$@"
