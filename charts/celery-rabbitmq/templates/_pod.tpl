{{/*
Pod building blocks: images, the pod-level spec the taskqueue pods share (service account, security
context, scheduling), container base, the /tmp volume, probes, and the worker's shutdown and replica owner.
*/}}

{{/*
[registry/]repository[:tag][@digest]. global.imageRegistry, when set, replaces the registry the repository
names (a first path component with "." or ":", or localhost), else goes in front of it. An empty tag
falls back to defaultTag; with neither, only a digest can name the image (_validate.tpl refuses the rest).
Args: ctx, image (the image values), defaultTag.
*/}}
{{- define "celery-rabbitmq.imageRef" -}}
{{- $repository := .image.repository -}}
{{- with ((.ctx.Values.global | default dict).imageRegistry) -}}
{{- $parts := splitn "/" 2 $repository -}}
{{- if and $parts._1 (regexMatch "[.:]|^localhost$" $parts._0) -}}
{{- $repository = $parts._1 -}}
{{- end -}}
{{- $repository = printf "%s/%s" (trimSuffix "/" .) $repository -}}
{{- end -}}
{{- $tag := .image.tag | default .defaultTag -}}
{{- $ref := $repository -}}
{{- if $tag -}}
{{- $ref = printf "%s:%s" $ref $tag -}}
{{- end -}}
{{- if .image.digest -}}
{{- $ref = printf "%s@%s" $ref .image.digest -}}
{{- end -}}
{{- $ref -}}
{{- end -}}

{{- define "celery-rabbitmq.image" -}}
{{- include "celery-rabbitmq.imageRef" (dict "ctx" . "image" .Values.image "defaultTag" .Chart.AppVersion) -}}
{{- end -}}

{{- define "celery-rabbitmq.rabbitmq.image" -}}
{{- include "celery-rabbitmq.imageRef" (dict "ctx" . "image" .Values.rabbitmq.image "defaultTag" "") -}}
{{- end -}}

{{/* Pod-level spec shared by the taskqueue pods. Args: ctx, component, values. */}}
{{- define "celery-rabbitmq.taskqueuePodSpec" -}}
{{- $ctx := .ctx -}}
serviceAccountName: {{ include "celery-rabbitmq.serviceAccountName" $ctx }}
automountServiceAccountToken: {{ $ctx.Values.serviceAccount.automountServiceAccountToken }}
{{- /* The broker address is set explicitly: no need for the Service-link variables. */}}
enableServiceLinks: false
{{- with $ctx.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml $ctx.Values.podSecurityContext | nindent 2 }}
{{- include "celery-rabbitmq.scheduling" . }}
{{- end -}}

{{/* nodeSelector, tolerations, affinity, topologySpreadConstraints, priorityClassName. Args: ctx, component, values. */}}
{{- define "celery-rabbitmq.scheduling" -}}
{{- with .values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with .values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- if .values.topologySpreadConstraints }}
topologySpreadConstraints:
  {{- range .values.topologySpreadConstraints }}
  {{- $c := . }}
  {{- if not (hasKey $c "labelSelector") }}
  {{- $c = merge (dict "labelSelector" (dict "matchLabels" (include "celery-rabbitmq.selectorLabels" $ | fromYaml))) $c }}
  {{- end }}
  - {{- toYaml $c | nindent 4 }}
  {{- end }}
{{- end }}
{{- end -}}

{{/* A taskqueue container's image, pull policy and securityContext. */}}
{{- define "celery-rabbitmq.taskqueueContainerBase" -}}
image: {{ include "celery-rabbitmq.image" . | quote }}
imagePullPolicy: {{ .Values.image.pullPolicy }}
securityContext:
  {{- toYaml .Values.securityContext | nindent 2 }}
{{- end -}}

{{- define "celery-rabbitmq.tmpVolume" -}}
- name: tmp
  emptyDir:
    sizeLimit: {{ .Values.tmpSizeLimit }}
{{- end -}}

{{- define "celery-rabbitmq.tmpVolumeMount" -}}
- name: tmp
  mountPath: /tmp
{{- end -}}

{{/* An exec probe field (`name:` and its handler) at indent, on a line of its own. Its timing is
probeDefaults with the component's probe over it key by key: a key the component sets wins, even false or
0 (a null one keeps the default); nothing is rendered when the result is disabled.
Args: ctx, name (startupProbe, livenessProbe, readinessProbe), probe (the component's values), command
(list), indent. */}}
{{- define "celery-rabbitmq.execProbe" -}}
{{- $probe := deepCopy (.ctx.Values.probeDefaults | default dict) -}}
{{- range $key, $value := (.probe | default dict) -}}
{{- if not (kindIs "invalid" $value) -}}
{{- $_ := set $probe $key $value -}}
{{- end -}}
{{- end -}}
{{- if $probe.enabled }}
{{ printf "%s:" .name | indent (int .indent) }}
{{- include "celery-rabbitmq.execProbeHandler" (dict "probe" $probe "command" .command) | nindent (add .indent 2 | int) }}
{{- end -}}
{{- end -}}

{{/* The handler and timing of an exec probe. Args: probe (merged values), command (list). */}}
{{- define "celery-rabbitmq.execProbeHandler" -}}
exec:
  command:
    {{- toYaml .command | nindent 4 }}
initialDelaySeconds: {{ .probe.initialDelaySeconds }}
periodSeconds: {{ .probe.periodSeconds }}
timeoutSeconds: {{ .probe.timeoutSeconds }}
failureThreshold: {{ .probe.failureThreshold }}
successThreshold: 1
{{- end -}}

{{/* Worker grace period: explicit, or the drain's deadline (each process runs out the prefetchMultiplier
tasks it may hold, each within taskTimeLimit) + shutdownMarginSeconds. */}}
{{- define "celery-rabbitmq.worker.gracePeriod" -}}
{{- $w := .Values.worker -}}
{{- if kindIs "invalid" $w.terminationGracePeriodSeconds -}}
{{- add (mul (int $w.prefetchMultiplier) (int $w.taskTimeLimit)) (int $w.shutdownMarginSeconds) -}}
{{- else -}}
{{- int $w.terminationGracePeriodSeconds -}}
{{- end -}}
{{- end -}}

{{/* "true" when something other than the Deployment owns the worker replica count. */}}
{{- define "celery-rabbitmq.worker.autoscaled" -}}
{{- if or .Values.worker.autoscaling.enabled .Values.worker.keda.enabled -}}true{{- end -}}
{{- end -}}
