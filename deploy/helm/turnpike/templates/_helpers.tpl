{{/* The name of every object of the release. */}}
{{- define "turnpike.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Labels that select the pods. */}}
{{- define "turnpike.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Every object's labels. */}}
{{- define "turnpike.labels" -}}
{{ include "turnpike.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* The Secret holding rest-secret and admin-token. */}}
{{- define "turnpike.secretName" -}}
{{- .Values.secret.existingSecret | default (include "turnpike.fullname" .) -}}
{{- end -}}

{{/* The metrics port, from "ADDRESS:PORT". */}}
{{- define "turnpike.metricsPort" -}}
{{- regexFind "[0-9]+$" .Values.metrics.listen -}}
{{- end -}}
