{{/*
Names, labels, images and the blocks shared by the worker, producer, Flower and the test pod.
*/}}

{{- define "celery-rabbitmq.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
The unbounded base of every object name: fullnameOverride, else <release>-<chart name> (the release
alone when it already contains the chart name). Never used as is: see boundedName.
*/}}
{{- define "celery-rabbitmq.baseName" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
<base>-<suffix> in at most `max` characters, a DNS-1035 label (Service names need one; every name gets the
same base, so objects of a release share their prefix). Release names may be 53 characters, start with a
digit or hold dots: when the base has to change (cut to fit, dots made dashes, "r-" put before a leading
digit), it is cut further and "-<5 hex of sha256(base)>" appended, so two releases whose long names differ
only past the cut still get different names. The suffix is never cut, names never end in "-".
Names that already fit are unchanged (upgrades keep their objects). Args: ctx, suffix ("" for none), max.
*/}}
{{- define "celery-rabbitmq.boundedName" -}}
{{- $raw := include "celery-rabbitmq.baseName" .ctx -}}
{{- $base := replace "." "-" $raw -}}
{{- if regexMatch "^[0-9]" $base -}}
{{- $base = printf "r-%s" $base -}}
{{- end -}}
{{- $tail := ternary "" (printf "-%s" .suffix) (empty .suffix) -}}
{{- $room := sub (int .max) (len $tail) | int -}}
{{- if and (eq $base $raw) (le (len $base) $room) -}}
{{- printf "%s%s" $base $tail -}}
{{- else -}}
{{- $cut := regexReplaceAll "-+$" (trunc (sub $room 6 | int) $base) "" -}}
{{- printf "%s-%s%s" $cut (sha256sum $raw | trunc 5) $tail -}}
{{- end -}}
{{- end -}}

{{/* The full name (default ServiceAccount name, and the prefix of every other name), <= 63 characters. */}}
{{- define "celery-rabbitmq.fullname" -}}
{{- include "celery-rabbitmq.boundedName" (dict "ctx" . "suffix" "" "max" 63) -}}
{{- end -}}

{{/* <fullname>-<suffix> within `max` characters (default 63, a DNS label). Args: ctx, suffix, max. */}}
{{- define "celery-rabbitmq.componentName" -}}
{{- include "celery-rabbitmq.boundedName" (dict "ctx" .ctx "suffix" .suffix "max" (.max | default 63)) -}}
{{- end -}}

{{- define "celery-rabbitmq.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Selector labels. Args: ctx, component. Stable across upgrades: never add version labels here. */}}
{{- define "celery-rabbitmq.selectorLabels" -}}
app.kubernetes.io/name: {{ include "celery-rabbitmq.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* The chart's own labels. Args: ctx, component. */}}
{{- define "celery-rabbitmq.chartLabels" -}}
{{ include "celery-rabbitmq.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/part-of: {{ include "celery-rabbitmq.name" .ctx }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
helm.sh/chart: {{ include "celery-rabbitmq.chart" .ctx }}
{{- end -}}

{{/* All labels of an object: commonLabels added, but the chart's labels win, so selectors never break.
Args: ctx, component. */}}
{{- define "celery-rabbitmq.labels" -}}
{{- $labels := fromYaml (include "celery-rabbitmq.chartLabels" .) -}}
{{- toYaml (merge $labels (.ctx.Values.commonLabels | default dict)) -}}
{{- end -}}

{{/* Object metadata: name, namespace, labels, commonAnnotations. Args: ctx, component, name, annotations. */}}
{{- define "celery-rabbitmq.metadata" -}}
name: {{ .name }}
namespace: {{ .ctx.Release.Namespace }}
labels:
  {{- include "celery-rabbitmq.labels" . | nindent 2 }}
{{- $annotations := merge (dict) (.annotations | default dict) (.ctx.Values.commonAnnotations | default dict) }}
{{- with $annotations }}
annotations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* Pod template labels: podLabels added, but the chart's labels win (the selector must keep matching).
Args: ctx, component, values (the component's values). */}}
{{- define "celery-rabbitmq.podLabels" -}}
{{- $labels := fromYaml (include "celery-rabbitmq.labels" .) -}}
{{- toYaml (merge $labels (.values.podLabels | default dict)) -}}
{{- end -}}

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

{{- define "celery-rabbitmq.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "celery-rabbitmq.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* ---------------------------------------------------------------- RabbitMQ names */}}

{{/*
The StatefulSet's name, and that of the broker's ConfigMap, Secret, NetworkPolicy, PDB, ServiceAccount
and default Service: at most 52 characters, because the controller labels each revision with
controller-revision-hash=<name>-<10-character hash>, a label value (<= 63). Its pods are <name>-<ordinal>
(<= 55, valid hostnames); its PVCs data-<name>-<ordinal>.
*/}}
{{- define "celery-rabbitmq.rabbitmq.fullname" -}}
{{- include "celery-rabbitmq.componentName" (dict "ctx" . "suffix" "rabbitmq" "max" 52) -}}
{{- end -}}

{{- define "celery-rabbitmq.rabbitmq.headlessName" -}}
{{- include "celery-rabbitmq.componentName" (dict "ctx" . "suffix" "rabbitmq-headless") -}}
{{- end -}}

{{- define "celery-rabbitmq.rabbitmq.serviceName" -}}
{{- .Values.rabbitmq.service.name | default (include "celery-rabbitmq.rabbitmq.fullname" .) -}}
{{- end -}}

{{- define "celery-rabbitmq.rabbitmq.serviceAccountName" -}}
{{- if .Values.rabbitmq.serviceAccount.create -}}
{{- default (include "celery-rabbitmq.rabbitmq.fullname" .) .Values.rabbitmq.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.rabbitmq.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* "true" when the bundled broker runs several nodes. */}}
{{- define "celery-rabbitmq.rabbitmq.clustered" -}}
{{- if and .Values.rabbitmq.enabled (gt (int .Values.rabbitmq.replicaCount) 1) -}}true{{- end -}}
{{- end -}}

{{/* "true" when the peer-discovery Role/RoleBinding (and RabbitMQ's own ServiceAccount) are rendered. */}}
{{- define "celery-rabbitmq.rabbitmq.rbac" -}}
{{- if and (include "celery-rabbitmq.rabbitmq.clustered" .) .Values.rabbitmq.rbac.create -}}true{{- end -}}
{{- end -}}

{{- define "celery-rabbitmq.rabbitmq.secretName" -}}
{{- .Values.rabbitmq.auth.existingSecret | default (include "celery-rabbitmq.rabbitmq.fullname" .) -}}
{{- end -}}

{{- define "celery-rabbitmq.rabbitmq.cookieSecretName" -}}
{{- .Values.rabbitmq.auth.existingErlangCookieSecret | default (include "celery-rabbitmq.componentName" (dict "ctx" . "suffix" "rabbitmq-erlang-cookie")) -}}
{{- end -}}

{{- define "celery-rabbitmq.rabbitmq.defaultQueueType" -}}
{{- .Values.rabbitmq.defaultQueueType | default (ternary "quorum" "classic" (gt (int .Values.rabbitmq.replicaCount) 1)) -}}
{{- end -}}

{{/*
consumer_timeout (ms). A worker with late acks holds up to concurrency * prefetchMultiplier unacked
messages; the last one waits for at most (prefetchMultiplier - 1) tasks on its process, then runs for at
most taskTimeLimit: prefetchMultiplier * taskTimeLimit seconds unacked. Add the margin, and never go
below RabbitMQ's own 30-minute default.
*/}}
{{- define "celery-rabbitmq.rabbitmq.consumerTimeout" -}}
{{- $w := .Values.worker -}}
{{- $seconds := add (mul (int $w.prefetchMultiplier) (int $w.taskTimeLimit)) (int .Values.rabbitmq.consumerTimeoutMarginSeconds) -}}
{{- max 1800000 (mul $seconds 1000) -}}
{{- end -}}

{{/* ---------------------------------------------------------------- broker as seen by the clients */}}

{{- define "celery-rabbitmq.broker.host" -}}
{{- if .Values.rabbitmq.enabled -}}
{{- printf "%s.%s.svc.%s" (include "celery-rabbitmq.rabbitmq.serviceName" .) .Release.Namespace .Values.clusterDomain -}}
{{- else -}}
{{- .Values.externalBroker.host -}}
{{- end -}}
{{- end -}}

{{- define "celery-rabbitmq.broker.port" -}}
{{- if .Values.rabbitmq.enabled -}}
{{- .Values.rabbitmq.service.ports.amqp -}}
{{- else -}}
{{- .Values.externalBroker.port -}}
{{- end -}}
{{- end -}}

{{- define "celery-rabbitmq.broker.vhost" -}}
{{- if .Values.rabbitmq.enabled -}}/{{- else -}}{{ .Values.externalBroker.vhost }}{{- end -}}
{{- end -}}

{{/* The chart-owned Secret holding externalBroker.username (when no externalBroker.usernameKey). */}}
{{- define "celery-rabbitmq.externalBroker.usernameSecretName" -}}
{{- include "celery-rabbitmq.componentName" (dict "ctx" . "suffix" "broker-username") -}}
{{- end -}}

{{/* Secret and key holding the broker user name: the user travels like the password, by secretKeyRef.
Bundled broker: the (generated or existing) broker Secret, key rabbitmq.auth.usernameKey. External broker:
externalBroker.existingSecret under externalBroker.usernameKey, else the chart-owned Secret rendering
externalBroker.username. */}}
{{- define "celery-rabbitmq.broker.usernameSecretName" -}}
{{- if .Values.rabbitmq.enabled -}}
{{- include "celery-rabbitmq.rabbitmq.secretName" . -}}
{{- else if .Values.externalBroker.usernameKey -}}
{{- .Values.externalBroker.existingSecret -}}
{{- else -}}
{{- include "celery-rabbitmq.externalBroker.usernameSecretName" . -}}
{{- end -}}
{{- end -}}

{{- define "celery-rabbitmq.broker.usernameKey" -}}
{{- if .Values.rabbitmq.enabled -}}
{{- .Values.rabbitmq.auth.usernameKey -}}
{{- else -}}
{{- .Values.externalBroker.usernameKey | default "username" -}}
{{- end -}}
{{- end -}}

{{- define "celery-rabbitmq.broker.secretName" -}}
{{- if .Values.rabbitmq.enabled -}}
{{- include "celery-rabbitmq.rabbitmq.secretName" . -}}
{{- else -}}
{{- .Values.externalBroker.existingSecret -}}
{{- end -}}
{{- end -}}

{{- define "celery-rabbitmq.broker.passwordKey" -}}
{{- if .Values.rabbitmq.enabled -}}{{ .Values.rabbitmq.auth.passwordKey }}{{- else -}}{{ .Values.externalBroker.passwordKey }}{{- end -}}
{{- end -}}

{{/* "true" when the clients get a full BROKER_URL from a Secret. */}}
{{- define "celery-rabbitmq.broker.useUrl" -}}
{{- if and (not .Values.rabbitmq.enabled) .Values.externalBroker.urlKey -}}true{{- end -}}
{{- end -}}

{{/*
The broker env block of every taskqueue container (the runtime reads them: README, Configuration). Host and port are set
explicitly, whatever the Service is called; secrets only by secretKeyRef.
*/}}
{{- define "celery-rabbitmq.brokerEnv" -}}
{{- $host := include "celery-rabbitmq.broker.host" . -}}
{{- if $host }}
- name: RABBITMQ_SERVICE_SERVICE_HOST
  value: {{ $host | quote }}
- name: RABBITMQ_SERVICE_SERVICE_PORT
  value: {{ include "celery-rabbitmq.broker.port" . | quote }}
{{- end }}
{{- if include "celery-rabbitmq.broker.useUrl" . }}
- name: BROKER_URL
  valueFrom:
    secretKeyRef:
      name: {{ .Values.externalBroker.existingSecret }}
      key: {{ .Values.externalBroker.urlKey }}
{{- else }}
- name: RABBITMQ_VHOST
  value: {{ include "celery-rabbitmq.broker.vhost" . | quote }}
- name: RABBITMQ_USERNAME
  valueFrom:
    secretKeyRef:
      name: {{ include "celery-rabbitmq.broker.usernameSecretName" . }}
      key: {{ include "celery-rabbitmq.broker.usernameKey" . }}
- name: RABBITMQ_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "celery-rabbitmq.broker.secretName" . }}
      key: {{ include "celery-rabbitmq.broker.passwordKey" . }}
{{- end }}
{{- end -}}

{{/* Celery settings every taskqueue container shares. */}}
{{- define "celery-rabbitmq.celeryEnv" -}}
- name: QUEUE_NAME
  value: {{ .Values.celery.queueName | quote }}
{{- /* Every container that declares the queue (worker, producer, Flower, test pod) must declare it with
the same arguments, or RabbitMQ refuses with PRECONDITION_FAILED: so they are set here, for all. */}}
- name: QUEUE_TYPE
  value: {{ .Values.celery.queueType | quote }}
- name: QUEUE_DELIVERY_LIMIT
  value: {{ .Values.celery.deliveryLimit | quote }}
- name: RESULT_BACKEND
  value: {{ .Values.celery.resultBackend | quote }}
- name: LOG_LEVEL
  value: {{ .Values.celery.logLevel | quote }}
{{- end -}}

{{/* The whole env of a taskqueue container. Args: ctx, values (component values), env (extra block). */}}
{{- define "celery-rabbitmq.taskqueueEnv" -}}
{{ include "celery-rabbitmq.brokerEnv" .ctx | trim }}
{{ include "celery-rabbitmq.celeryEnv" .ctx }}
{{- with .env }}
{{ . | trim }}
{{- end }}
{{- with .values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/*
Checksum of what the broker credentials Secret is made of (not of its generated content, which differs
per render): pods roll when the values that shape it change, a generated password never changes.
*/}}
{{- define "celery-rabbitmq.broker.checksum" -}}
{{- if .Values.rabbitmq.enabled -}}
{{- toJson .Values.rabbitmq.auth | sha256sum -}}
{{- else -}}
{{- toJson .Values.externalBroker | sha256sum -}}
{{- end -}}
{{- end -}}

{{/*
A secret value that survives `helm upgrade`: the explicit value, else the one already stored in the
Secret (lookup; empty under `helm template`), else a new random one. Returns plain text.
Args: ctx, name (Secret), key, value, length.
*/}}
{{- define "celery-rabbitmq.secretValue" -}}
{{- if .value -}}
{{- .value -}}
{{- else -}}
{{- $existing := lookup "v1" "Secret" .ctx.Release.Namespace .name | default dict -}}
{{- $stored := dig "data" .key "" $existing -}}
{{- if $stored -}}
{{- $stored | b64dec -}}
{{- else -}}
{{- randAlphaNum (int .length) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* ---------------------------------------------------------------- pod building blocks */}}

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

{{/* An exec probe. Args: probe (values), command (list). Renders nothing when disabled. */}}
{{- define "celery-rabbitmq.execProbe" -}}
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

{{- define "celery-rabbitmq.flower.secretName" -}}
{{- .Values.flower.auth.existingSecret | default (include "celery-rabbitmq.componentName" (dict "ctx" . "suffix" "flower")) -}}
{{- end -}}

{{- define "celery-rabbitmq.flower.secretKey" -}}
{{- if .Values.flower.auth.existingSecret -}}{{ .Values.flower.auth.existingSecretKey }}{{- else -}}basic-auth{{- end -}}
{{- end -}}

{{/* Flower's url_prefix: the ingress path without slashes ("" at the root). */}}
{{- define "celery-rabbitmq.flower.urlPrefix" -}}
{{- trimAll "/" .Values.flower.ingress.path -}}
{{- end -}}

{{/* Worker-only settings. */}}
{{- define "celery-rabbitmq.worker.env" -}}
{{- $w := .Values.worker -}}
- name: WORKER_CONCURRENCY
  value: {{ $w.concurrency | quote }}
- name: WORKER_PREFETCH_MULTIPLIER
  value: {{ $w.prefetchMultiplier | quote }}
- name: TASK_TIME_LIMIT
  value: {{ $w.taskTimeLimit | quote }}
- name: TASK_SOFT_TIME_LIMIT
  value: {{ $w.taskSoftTimeLimit | quote }}
- name: WORKER_REMOTE_CONTROL
  value: {{ $w.remoteControl | quote }}
- name: WORKER_LOG_TASKS
  value: {{ $w.logTasks | quote }}
- name: HEALTH_FILE
  value: /tmp/taskqueue-worker.heartbeat
- name: HEALTH_INTERVAL
  value: {{ $w.health.interval | quote }}
- name: HEALTH_MAX_AGE
  value: {{ $w.health.maxAge | quote }}
{{- end -}}

{{/* Producer-only settings. HEALTH_INTERVAL/HEALTH_MAX_AGE have the worker's names: each runs in its own
container; the heartbeat file is PRODUCER_HEALTH_FILE, which `taskqueue health producer` reads. */}}
{{- define "celery-rabbitmq.producer.env" -}}
{{- $p := .Values.producer -}}
{{- if kindIs "invalid" $p.rate }}
- name: PRODUCER_INTERVAL
  value: {{ $p.interval | toString | quote }}
{{- else }}
{{- /* producer.rate replaces producer.interval: the producer refuses both variables at once. */}}
- name: PRODUCER_RATE
  value: {{ $p.rate | toString | quote }}
{{- end }}
{{- if not (kindIs "invalid" $p.count) }}
{{- /* Then idle: an exited container of a Deployment would be restarted into another batch. */}}
- name: PRODUCER_COUNT
  value: {{ int64 $p.count | toString | quote }}
- name: PRODUCER_IDLE_AFTER_COUNT
  value: "true"
{{- end }}
- name: PRODUCER_HEALTH_FILE
  value: /tmp/taskqueue-producer.heartbeat
- name: HEALTH_INTERVAL
  value: {{ $p.health.interval | quote }}
- name: HEALTH_MAX_AGE
  value: {{ $p.health.maxAge | quote }}
{{- end -}}

{{/* celery beat's settings: the schedule as JSON (the runtime checks it again, naming a bad entry), the
state file on the beat-state volume, and its own heartbeat file, which `taskqueue health beat` reads. */}}
{{- define "celery-rabbitmq.beat.env" -}}
{{- $b := .Values.beat -}}
- name: BEAT_SCHEDULE
  value: {{ toJson $b.schedule | quote }}
- name: BEAT_SCHEDULE_FILE
  value: /var/lib/taskqueue-beat/celerybeat-schedule
- name: BEAT_HEALTH_FILE
  value: /tmp/taskqueue-beat.heartbeat
- name: HEALTH_INTERVAL
  value: {{ $b.health.interval | quote }}
- name: HEALTH_MAX_AGE
  value: {{ $b.health.maxAge | quote }}
{{- end -}}

{{- define "celery-rabbitmq.beat.claimName" -}}
{{- .Values.beat.persistence.existingClaim | default (include "celery-rabbitmq.componentName" (dict "ctx" . "suffix" "beat")) -}}
{{- end -}}

{{/* Flower-only settings. The probe (`taskqueue health flower`) reads the same FLOWER_PORT and
FLOWER_URL_PREFIX, so Flower, the Ingress path and the probe path always agree. */}}
{{- define "celery-rabbitmq.flower.env" -}}
{{- $f := .Values.flower -}}
- name: FLOWER_PORT
  value: {{ $f.containerPort | quote }}
- name: FLOWER_ADDRESS
  value: "0.0.0.0"
- name: FLOWER_URL_PREFIX
  value: {{ include "celery-rabbitmq.flower.urlPrefix" . | quote }}
- name: FLOWER_MAX_TASKS
  value: {{ $f.maxTasks | quote }}
- name: FLOWER_MAX_WORKERS
  value: {{ $f.maxWorkers | quote }}
- name: FLOWER_PERSISTENT
  value: {{ $f.persistence.enabled | quote }}
{{- if $f.persistence.enabled }}
- name: FLOWER_DB
  value: /var/lib/flower/flower.db
{{- end }}
{{- if $f.auth.enabled }}
- name: FLOWER_BASIC_AUTH
  valueFrom:
    secretKeyRef:
      name: {{ include "celery-rabbitmq.flower.secretName" . }}
      key: {{ include "celery-rabbitmq.flower.secretKey" . }}
{{- else }}
- name: FLOWER_ALLOW_UNAUTHENTICATED
  value: "true"
{{- end }}
{{- end -}}

{{/* ---------------------------------------------------------------- generated credentials */}}

{{/*
The Secrets holding a generated value (no explicit value, no existing Secret), as the secrets hook's plan
(files/create-secrets.py): name, labels, literal keys, generated keys with their length, derived keys.
No secret material: the values are made by the hook, inside the cluster. JSON list.
*/}}
{{- define "celery-rabbitmq.secrets.generated" -}}
{{- $plan := list -}}
{{- $r := .Values.rabbitmq -}}
{{- $f := .Values.flower -}}
{{- /* Not app.kubernetes.io/instance: Argo CD's label tracking would take the Secrets for its own,
extraneous objects and prune them. */ -}}
{{- $labels := dict "app.kubernetes.io/name" (include "celery-rabbitmq.name" .) "app.kubernetes.io/part-of" (include "celery-rabbitmq.name" .) "celery-rabbitmq/release" .Release.Name -}}
{{- if $r.enabled -}}
{{- if and (not $r.auth.existingSecret) (not $r.auth.password) -}}
{{- $plan = append $plan (dict "name" (include "celery-rabbitmq.rabbitmq.secretName" .) "labels" (merge (dict "app.kubernetes.io/component" "rabbitmq") $labels) "literal" (dict $r.auth.usernameKey $r.auth.username) "generated" (dict $r.auth.passwordKey 32)) -}}
{{- end -}}
{{- if and (not $r.auth.existingErlangCookieSecret) (not $r.auth.erlangCookie) -}}
{{- $plan = append $plan (dict "name" (include "celery-rabbitmq.rabbitmq.cookieSecretName" .) "labels" (merge (dict "app.kubernetes.io/component" "rabbitmq") $labels) "generated" (dict $r.auth.erlangCookieKey 64)) -}}
{{- end -}}
{{- end -}}
{{- if and $f.enabled $f.auth.enabled (not $f.auth.existingSecret) (not $f.auth.password) -}}
{{- $plan = append $plan (dict "name" (include "celery-rabbitmq.flower.secretName" .) "labels" (merge (dict "app.kubernetes.io/component" "flower") $labels) "literal" (dict "username" $f.auth.username) "generated" (dict "password" 24) "derived" (dict "basic-auth" "{username}:{password}")) -}}
{{- end -}}
{{- toJson $plan -}}
{{- end -}}

{{/* The secrets hook's plan: the generated Secrets with secrets.mode=hook, else none. JSON list. */}}
{{- define "celery-rabbitmq.secrets.hookPlan" -}}
{{- if eq .Values.secrets.mode "hook" -}}
{{- include "celery-rabbitmq.secrets.generated" . -}}
{{- else -}}
[]
{{- end -}}
{{- end -}}

{{/* "true" when the secrets hook creates the Secret named `name` (so the chart must not render it). Args: ctx, name. */}}
{{- define "celery-rabbitmq.secrets.byHook" -}}
{{- range (include "celery-rabbitmq.secrets.hookPlan" .ctx | fromJsonArray) -}}
{{- if eq .name $.name -}}true{{- end -}}
{{- end -}}
{{- end -}}

{{/* The scrape settings every ServiceMonitor endpoint shares (metrics.serviceMonitor). */}}
{{- define "celery-rabbitmq.serviceMonitor.endpoint" -}}
{{- $sm := .Values.metrics.serviceMonitor -}}
scheme: http
interval: {{ $sm.interval }}
scrapeTimeout: {{ $sm.scrapeTimeout }}
{{- with $sm.relabelings }}
relabelings:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $sm.metricRelabelings }}
metricRelabelings:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}
