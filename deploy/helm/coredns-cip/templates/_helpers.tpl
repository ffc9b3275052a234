{{- define "coredns-cip.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "coredns-cip.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "coredns-cip.selectorLabels" -}}
app.kubernetes.io/name: {{ include "coredns-cip.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "coredns-cip.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "coredns-cip.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: {{ .Values.mode }}
{{- end -}}

{{- define "coredns-cip.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "coredns-cip.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "coredns-cip.apiKeySecret" -}}
{{- if .Values.apiKey.existingSecret -}}
{{- .Values.apiKey.existingSecret -}}
{{- else if .Values.apiKey.value -}}
{{- printf "%s-api-key" (include "coredns-cip.fullname" .) -}}
{{- else -}}
{{- fail "apiKey: set apiKey.existingSecret (a Secret holding the Criminal IP API key) or apiKey.value" -}}
{{- end -}}
{{- end -}}

{{- define "coredns-cip.tokensSecret" -}}
{{- if .Values.events.tokens.existingSecret -}}
{{- .Values.events.tokens.existingSecret -}}
{{- else if .Values.events.tokens.value -}}
{{- printf "%s-tokens" (include "coredns-cip.fullname" .) -}}
{{- else -}}
{{- fail "events: the event API listens on the pod network and needs a tokens file: set events.tokens.existingSecret or events.tokens.value" -}}
{{- end -}}
{{- end -}}

{{/* Where the Secrets are mounted; the Corefile names these paths. */}}
{{- define "coredns-cip.apiKeyDir" -}}/run/coredns-cip/api-key{{- end -}}
{{- define "coredns-cip.tokensDir" -}}/run/coredns-cip/tokens{{- end -}}

{{/* hostNetwork in daemonset mode: the server binds the link-local address. */}}
{{- define "coredns-cip.hostNetwork" -}}
{{- if and (eq .Values.mode "daemonset") .Values.nodeLocal.hostNetwork -}}true{{- end -}}
{{- end -}}

{{- define "coredns-cip.validate" -}}
{{- if not (has .Values.mode (list "deployment" "daemonset")) -}}
{{- fail (printf "mode: %q is neither deployment nor daemonset" .Values.mode) -}}
{{- end -}}
{{- if not (has .Values.apiKey.mountAs (list "env" "file")) -}}
{{- fail (printf "apiKey.mountAs: %q is neither env nor file" .Values.apiKey.mountAs) -}}
{{- end -}}
{{- if and (eq .Values.mode "daemonset") (not .Values.nodeLocal.clusterDNS) -}}
{{- fail "nodeLocal.clusterDNS: daemonset mode forwards the cluster domain to the cluster DNS service: set its IP (kubectl -n kube-system get svc kube-dns)" -}}
{{- end -}}
{{- end -}}

{{/* The cipvalidate block, shared by both modes. */}}
{{- define "coredns-cip.cipvalidate" -}}
cipvalidate{{ range .Values.cipvalidate.zones }} {{ . }}{{ end }} {
{{- if eq .Values.apiKey.mountAs "file" }}
    api_key_file {{ include "coredns-cip.apiKeyDir" . }}/{{ .Values.apiKey.secretKey }}
{{- else }}
    api_key {$CIP_API_KEY}
{{- end }}
{{- if .Values.state.enabled }}
    state {{ .Values.state.path }}{{ if .Values.state.strict }} strict{{ end }}
{{- end }}
{{- if .Values.events.enabled }}
    events :{{ .Values.events.port }} tokens {{ include "coredns-cip.tokensDir" . }}/{{ .Values.events.tokens.secretKey }}
{{- end }}
{{- with .Values.nftables }}
{{- if .enabled }}
    hook nftables {{ .family }} {{ .table }} {{ .set4 }} {{ .set6 }}{{ if .create }} create{{ end }}
{{- end }}
{{- end }}
{{- range .Values.cipvalidate.options }}
    {{ . }}
{{- end }}
}
{{- end -}}

{{- define "coredns-cip.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
