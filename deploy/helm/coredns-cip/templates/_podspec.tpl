{{/* The pod template shared by the Deployment and the DaemonSet. */}}
{{- define "coredns-cip.podTemplate" -}}
{{- $hostNet := include "coredns-cip.hostNetwork" . -}}
{{- $probeHost := "" -}}
{{- if $hostNet }}{{ $probeHost = .Values.nodeLocal.listenAddress }}{{ end -}}
metadata:
  labels:
    {{- include "coredns-cip.selectorLabels" . | nindent 4 }}
    {{- with .Values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- if or (and (not .Values.apiKey.existingSecret) (eq .Values.apiKey.mountAs "env")) .Values.podAnnotations }}
  annotations:
    {{- if and (not .Values.apiKey.existingSecret) (eq .Values.apiKey.mountAs "env") }}
    # The key reaches the process through its environment: a new key restarts the pods.
    checksum/api-key: {{ .Values.apiKey.value | sha256sum | trunc 16 }}
    {{- end }}
    {{- with .Values.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- end }}
spec:
  serviceAccountName: {{ include "coredns-cip.serviceAccountName" . }}
  {{- if not (and .Values.rbac.create (eq .Values.mode "deployment")) }}
  # Nothing here talks to the Kubernetes API.
  automountServiceAccountToken: false
  {{- end }}
  {{- with .Values.priorityClassName }}
  priorityClassName: {{ . }}
  {{- end }}
  # The node's resolver is the upstream: cluster DNS must not ask itself.
  dnsPolicy: Default
  {{- if $hostNet }}
  hostNetwork: true
  {{- end }}
  terminationGracePeriodSeconds: {{ .Values.terminationGracePeriodSeconds }}
  {{- with .Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  securityContext:
    {{- toYaml .Values.podSecurityContext | nindent 4 }}
  {{- with .Values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- if eq .Values.mode "daemonset" }}
  tolerations:
    # A node-local cache runs on every node, tainted or not.
    - operator: Exists
  {{- else }}
  {{- with .Values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- end }}
  {{- if .Values.affinity }}
  affinity:
    {{- toYaml .Values.affinity | nindent 4 }}
  {{- else if and (eq .Values.mode "deployment") (ne .Values.podAntiAffinity "none") }}
  affinity:
    podAntiAffinity:
      {{- if eq .Values.podAntiAffinity "required" }}
      requiredDuringSchedulingIgnoredDuringExecution:
        - topologyKey: kubernetes.io/hostname
          labelSelector:
            matchLabels:
              {{- include "coredns-cip.selectorLabels" . | nindent 14 }}
      {{- else }}
      preferredDuringSchedulingIgnoredDuringExecution:
        - weight: 100
          podAffinityTerm:
            topologyKey: kubernetes.io/hostname
            labelSelector:
              matchLabels:
                {{- include "coredns-cip.selectorLabels" . | nindent 16 }}
      {{- end }}
  {{- end }}
  {{- with .Values.topologySpreadConstraints }}
  topologySpreadConstraints:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  containers:
    - name: coredns-cip
      image: {{ include "coredns-cip.image" . }}
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      command: ["/coredns-cip"]
      args: ["-conf", "/etc/coredns-cip/Corefile"]
      {{- if or (eq .Values.apiKey.mountAs "env") .Values.extraEnv }}
      env:
        {{- if eq .Values.apiKey.mountAs "env" }}
        - name: CIP_API_KEY
          valueFrom:
            secretKeyRef:
              name: {{ include "coredns-cip.apiKeySecret" . }}
              key: {{ .Values.apiKey.secretKey }}
        {{- end }}
        {{- with .Values.extraEnv }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- end }}
      ports:
        - name: dns
          containerPort: {{ .Values.dnsPort }}
          protocol: UDP
        - name: dns-tcp
          containerPort: {{ .Values.dnsPort }}
          protocol: TCP
        - name: metrics
          containerPort: {{ .Values.metricsPort }}
          protocol: TCP
        {{- if .Values.events.enabled }}
        - name: events
          containerPort: {{ .Values.events.port }}
          protocol: TCP
        {{- end }}
      livenessProbe:
        httpGet:
          {{- with $probeHost }}
          host: {{ . }}
          {{- end }}
          path: /health
          port: {{ .Values.healthPort }}
          scheme: HTTP
        {{- toYaml .Values.livenessProbe | nindent 8 }}
      readinessProbe:
        httpGet:
          {{- with $probeHost }}
          host: {{ . }}
          {{- end }}
          path: /ready
          port: {{ .Values.readyPort }}
          scheme: HTTP
        {{- toYaml .Values.readinessProbe | nindent 8 }}
      {{- with .Values.resources }}
      resources:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      securityContext:
        {{- $sc := deepCopy .Values.securityContext }}
        {{- if .Values.nftables.enabled }}
        {{- $caps := default dict $sc.capabilities }}
        {{- $_ := set $caps "add" (append (default list $caps.add) "NET_ADMIN" | uniq) }}
        {{- $_ := set $sc "capabilities" $caps }}
        {{- end }}
        {{- toYaml $sc | nindent 8 }}
      volumeMounts:
        - name: config
          mountPath: /etc/coredns-cip
          readOnly: true
        {{- if eq .Values.apiKey.mountAs "file" }}
        - name: api-key
          mountPath: {{ include "coredns-cip.apiKeyDir" . }}
          readOnly: true
        {{- end }}
        {{- if .Values.events.enabled }}
        - name: tokens
          mountPath: {{ include "coredns-cip.tokensDir" . }}
          readOnly: true
        {{- end }}
        {{- if .Values.state.enabled }}
        - name: state
          mountPath: {{ .Values.state.path }}
        {{- end }}
        {{- with .Values.extraVolumeMounts }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
  volumes:
    - name: config
      configMap:
        name: {{ include "coredns-cip.fullname" . }}
        items:
          - key: Corefile
            path: Corefile
    {{- if eq .Values.apiKey.mountAs "file" }}
    - name: api-key
      secret:
        secretName: {{ include "coredns-cip.apiKeySecret" . }}
        # Readable by the pod's fsGroup, not by other users on the node.
        defaultMode: 0440
        items:
          - key: {{ .Values.apiKey.secretKey }}
            path: {{ .Values.apiKey.secretKey }}
    {{- end }}
    {{- if .Values.events.enabled }}
    - name: tokens
      secret:
        secretName: {{ include "coredns-cip.tokensSecret" . }}
        # A tokens file readable by every user is refused when it holds plain tokens.
        defaultMode: 0440
        items:
          - key: {{ .Values.events.tokens.secretKey }}
            path: {{ .Values.events.tokens.secretKey }}
    {{- end }}
    {{- if .Values.state.enabled }}
    - name: state
      {{- toYaml .Values.state.volume | nindent 6 }}
    {{- end }}
    {{- with .Values.extraVolumes }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
{{- end -}}
