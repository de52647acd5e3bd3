{{- define "keyport-kube-agent.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "keyport-kube-agent.serviceAccountName" -}}
{{- default (include "keyport-kube-agent.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{- define "keyport-kube-agent.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "keyport-kube-agent.selector" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "keyport-kube-agent.projected" -}}
{{- and (eq .Values.joinMethod "kubernetes") (ne .Values.kubernetesTokenType "in_cluster") -}}
{{- end -}}
