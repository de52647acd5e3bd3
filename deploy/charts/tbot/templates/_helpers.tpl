{{- define "tbot.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "tbot.serviceAccountName" -}}
{{- default (include "tbot.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{- define "tbot.outputSecret" -}}
{{- default (include "tbot.fullname" .) .Values.outputSecret -}}
{{- end -}}

{{- define "tbot.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "tbot.selector" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "tbot.projected" -}}
{{- and (eq .Values.joinMethod "kubernetes") (ne .Values.kubernetesTokenType "in_cluster") -}}
{{- end -}}
