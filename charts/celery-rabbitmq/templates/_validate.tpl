{{/*
Cross-field rules the schema cannot express. Each failure names the key(s) to change.
Rendered from templates/validate.yaml so it runs for every render.
*/}}
{{- define "celery-rabbitmq.validate" -}}
{{- $v := .Values -}}
{{- $w := $v.worker -}}

{{- /* Broker */ -}}
{{- if $v.rabbitmq.enabled -}}
  {{- if eq (lower $v.rabbitmq.auth.username) "guest" -}}
    {{- fail "rabbitmq.auth.username must not be \"guest\": RabbitMQ refuses guest from other hosts; choose another user" -}}
  {{- end -}}
  {{- if eq $v.rabbitmq.auth.usernameKey $v.rabbitmq.auth.passwordKey -}}
    {{- fail "rabbitmq.auth.usernameKey must differ from rabbitmq.auth.passwordKey: the user and the password are separate keys of the broker Secret" -}}
  {{- end -}}
  {{- if or $v.externalBroker.host $v.externalBroker.existingSecret $v.externalBroker.urlKey -}}
    {{- fail "externalBroker is set but rabbitmq.enabled is true: set rabbitmq.enabled=false to use the external broker, or clear externalBroker" -}}
  {{- end -}}
{{- else -}}
  {{- if not $v.externalBroker.existingSecret -}}
    {{- fail "externalBroker.existingSecret is required when rabbitmq.enabled=false (the broker password or URL comes from it)" -}}
  {{- end -}}
  {{- if not $v.externalBroker.urlKey -}}
    {{- if not $v.externalBroker.host -}}
      {{- fail "externalBroker.host (or externalBroker.urlKey) is required when rabbitmq.enabled=false" -}}
    {{- end -}}
    {{- if and $v.externalBroker.username $v.externalBroker.usernameKey -}}
      {{- fail "externalBroker.username and externalBroker.usernameKey are mutually exclusive: the user comes either from the value or from externalBroker.existingSecret; set one" -}}
    {{- end -}}
    {{- if and $v.externalBroker.usernameKey (eq $v.externalBroker.usernameKey $v.externalBroker.passwordKey) -}}
      {{- fail "externalBroker.usernameKey must differ from externalBroker.passwordKey: the user and the password are separate keys of externalBroker.existingSecret" -}}
    {{- end -}}
    {{- if not (or $v.externalBroker.username $v.externalBroker.usernameKey) -}}
      {{- fail "externalBroker.username (or externalBroker.usernameKey) is required when rabbitmq.enabled=false and externalBroker.urlKey is empty" -}}
    {{- end -}}
    {{- if eq (lower $v.externalBroker.username) "guest" -}}
      {{- fail "externalBroker.username must not be \"guest\": choose another broker user" -}}
    {{- end -}}
  {{- end -}}
{{- end -}}

{{- /* Worker time limits and shutdown */ -}}
{{- if ge (int $w.taskSoftTimeLimit) (int $w.taskTimeLimit) -}}
  {{- fail (printf "worker.taskSoftTimeLimit (%d) must be below worker.taskTimeLimit (%d)" (int $w.taskSoftTimeLimit) (int $w.taskTimeLimit)) -}}
{{- end -}}
{{- if not (kindIs "invalid" $w.terminationGracePeriodSeconds) -}}
  {{- if le (int $w.terminationGracePeriodSeconds) (int $w.taskTimeLimit) -}}
    {{- fail (printf "worker.terminationGracePeriodSeconds (%d) must exceed worker.taskTimeLimit (%d): a warm shutdown lets the running task finish" (int $w.terminationGracePeriodSeconds) (int $w.taskTimeLimit)) -}}
  {{- end -}}
{{- end -}}
{{- if le (float64 $w.health.maxAge) (float64 $w.health.interval) -}}
  {{- fail "worker.health.maxAge must exceed worker.health.interval, or every heartbeat would be stale" -}}
{{- end -}}
{{- if le (float64 $v.producer.health.maxAge) (float64 $v.producer.health.interval) -}}
  {{- fail "producer.health.maxAge must exceed producer.health.interval, or every heartbeat would be stale" -}}
{{- end -}}

{{- /* Autoscaling */ -}}
{{- if and $w.autoscaling.enabled $w.keda.enabled -}}
  {{- fail "worker.autoscaling.enabled and worker.keda.enabled are mutually exclusive: KEDA manages its own HPA; enable one" -}}
{{- end -}}
{{- if $w.autoscaling.enabled -}}
  {{- if lt (int $w.autoscaling.maxReplicas) (int $w.autoscaling.minReplicas) -}}
    {{- fail "worker.autoscaling.maxReplicas must be at least worker.autoscaling.minReplicas" -}}
  {{- end -}}
  {{- if and (kindIs "invalid" $w.autoscaling.targetCPUUtilizationPercentage) (kindIs "invalid" $w.autoscaling.targetMemoryUtilizationPercentage) -}}
    {{- fail "worker.autoscaling needs worker.autoscaling.targetCPUUtilizationPercentage or worker.autoscaling.targetMemoryUtilizationPercentage" -}}
  {{- end -}}
{{- end -}}
{{- if $w.keda.enabled -}}
  {{- if lt (int $w.keda.maxReplicaCount) (int $w.keda.minReplicaCount) -}}
    {{- fail "worker.keda.maxReplicaCount must be at least worker.keda.minReplicaCount" -}}
  {{- end -}}
  {{- if not (kindIs "invalid" $w.keda.cooldownPeriod) -}}
    {{- if lt (int $w.keda.cooldownPeriod) (int $w.taskTimeLimit) -}}
      {{- fail (printf "worker.keda.cooldownPeriod (%d) must be at least worker.taskTimeLimit (%d)" (int $w.keda.cooldownPeriod) (int $w.taskTimeLimit)) -}}
    {{- end -}}
  {{- end -}}
{{- end -}}

{{- /* Flower */ -}}
{{- if and $v.flower.enabled $v.flower.persistence.enabled (eq $v.flower.persistence.type "pvc") (gt (int $v.flower.replicaCount) 1) -}}
  {{- fail "flower.persistence.enabled with type pvc needs flower.replicaCount <= 1: Flower's state file cannot be shared (or set flower.persistence.type=emptyDir)" -}}
{{- end -}}
{{- if and $v.flower.enabled $v.flower.auth.enabled (not $v.flower.auth.existingSecret) (not $v.flower.auth.username) -}}
  {{- fail "flower.auth.username is required when flower.auth.enabled and no flower.auth.existingSecret" -}}
{{- end -}}
{{- end -}}
