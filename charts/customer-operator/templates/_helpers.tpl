{{/* The chart name, or nameOverride. */}}
{{- define "customer-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The name of the release's objects: fullnameOverride, else "<release>" when it
contains the chart name, else "<release>-<chart>". */}}
{{- define "customer-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Labels of every object of the chart. */}}
{{- define "customer-operator.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "customer-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: customer-operator
{{- end }}

{{/* Labels that select the operator's pods. */}}
{{- define "customer-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "customer-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The operator's ServiceAccount. */}}
{{- define "customer-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "customer-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The Lease the replicas elect their leader with. */}}
{{- define "customer-operator.leaseName" -}}
{{- default (include "customer-operator.fullname" .) .Values.leaderElection.leaseName }}
{{- end }}

{{/* The operator image: repository, then @digest or :tag (default appVersion). */}}
{{- define "customer-operator.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* The one namespace the operator writes its Events to (src/controller/events.rs). */}}
{{- define "customer-operator.eventNamespace" -}}
default
{{- end }}
