{{/*
The environment of the taskqueue containers (worker, producer, Flower, beat, the test pod): the names
the runtime reads (README, Configuration). Credentials only by secretKeyRef.
*/}}

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
      name: {{ include "celery-rabbitmq.broker.passwordSecretName" . }}
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
  value: {{ include "celery-rabbitmq.celery.queueDeliveryLimit" . | quote }}
- name: BROKER_CONNECTION_TIMEOUT
  value: {{ .Values.celery.brokerConnectionTimeout | toString | quote }}
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

{{/* Worker-only settings. */}}
{{- define "celery-rabbitmq.worker.env" -}}
{{- $w := .Values.worker -}}
- name: WORKER_POOL
  value: {{ $w.pool | quote }}
- name: WORKER_CONCURRENCY
  value: {{ $w.concurrency | quote }}
- name: WORKER_BROKER_HEARTBEAT
  value: {{ $w.brokerHeartbeat | quote }}
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
- name: WORKER_MINGLE
  value: {{ $w.mingle | quote }}
- name: WORKER_GOSSIP
  value: {{ $w.gossip | quote }}
{{- with $w.taskModules }}
- name: WORKER_TASK_MODULES
  value: {{ join "," . | quote }}
{{- end }}
- name: HEALTH_INTERVAL
  value: {{ $w.health.interval | quote }}
- name: HEALTH_MAX_AGE
  value: {{ $w.health.maxAge | quote }}
{{- end -}}

{{/* Producer-only settings. HEALTH_INTERVAL/HEALTH_MAX_AGE are shared names: each component runs in its own
container. The heartbeat files are left at the package's defaults, which the probes read too. */}}
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
- name: HEALTH_INTERVAL
  value: {{ $p.health.interval | quote }}
- name: HEALTH_MAX_AGE
  value: {{ $p.health.maxAge | quote }}
{{- end -}}

{{/* celery beat's settings: the schedule as JSON (the runtime checks it again, naming a bad entry), the
state file on the beat-state volume (its heartbeat file stays at the package's default). */}}
{{- define "celery-rabbitmq.beat.env" -}}
{{- $b := .Values.beat -}}
- name: BEAT_SCHEDULE
  value: {{ toJson $b.schedule | quote }}
- name: BEAT_SCHEDULE_FILE
  value: /var/lib/taskqueue-beat/celerybeat-schedule
- name: HEALTH_INTERVAL
  value: {{ $b.health.interval | quote }}
- name: HEALTH_MAX_AGE
  value: {{ $b.health.maxAge | quote }}
{{- end -}}

{{/* Flower's url_prefix: the ingress path without slashes ("" at the root). */}}
{{- define "celery-rabbitmq.flower.urlPrefix" -}}
{{- trimAll "/" .Values.flower.ingress.path -}}
{{- end -}}

{{/* Flower-only settings. The probe (`taskqueue health flower`) reads the same FLOWER_PORT and
FLOWER_URL_PREFIX, so Flower, the Ingress path and the probe path always agree. */}}
{{- define "celery-rabbitmq.flower.env" -}}
{{- $f := .Values.flower -}}
- name: FLOWER_PORT
  value: {{ include "celery-rabbitmq.flower.port" . | quote }}
- name: FLOWER_ADDRESS
  value: "0.0.0.0"
- name: FLOWER_URL_PREFIX
  value: {{ include "celery-rabbitmq.flower.urlPrefix" . | quote }}
- name: FLOWER_MAX_TASKS
  value: {{ $f.maxTasks | quote }}
- name: FLOWER_MAX_WORKERS
  value: {{ $f.maxWorkers | quote }}
- name: FLOWER_PURGE_OFFLINE_WORKERS
  value: {{ $f.purgeOfflineWorkers | quote }}
- name: FLOWER_PERSISTENT
  value: {{ $f.persistence.enabled | quote }}
{{- if $f.persistence.enabled }}
- name: FLOWER_DB
  value: /var/lib/flower/flower.db
- name: FLOWER_STATE_SAVE_INTERVAL
  value: {{ $f.persistence.stateSaveInterval | quote }}
{{- end }}
{{- if $f.auth.enabled }}
- name: FLOWER_BASIC_AUTH
  valueFrom:
    secretKeyRef:
      name: {{ include "celery-rabbitmq.flower.authSecretName" . }}
      key: {{ include "celery-rabbitmq.flower.authSecretKey" . }}
{{- else }}
- name: FLOWER_ALLOW_UNAUTHENTICATED
  value: "true"
{{- end }}
{{- end -}}
