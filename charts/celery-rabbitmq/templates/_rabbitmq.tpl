{{/* RabbitMQ configuration files, rendered into the ConfigMap (and hashed into the pod annotation). */}}

{{- define "celery-rabbitmq.rabbitmq.plugins" -}}
{{- $plugins := list "rabbitmq_management" "rabbitmq_prometheus" -}}
{{- if include "celery-rabbitmq.rabbitmq.clustered" . -}}
{{- $plugins = append $plugins "rabbitmq_peer_discovery_k8s" -}}
{{- end -}}
{{- concat $plugins .Values.rabbitmq.extraPlugins | uniq | toJson -}}
{{- end -}}

{{- define "celery-rabbitmq.rabbitmq.enabledPlugins" -}}
[{{ include "celery-rabbitmq.rabbitmq.plugins" . | fromJsonArray | join "," }}].
{{- end -}}

{{- define "celery-rabbitmq.rabbitmq.conf" -}}
{{- $r := .Values.rabbitmq -}}
## Rendered by the celery-rabbitmq chart.
listeners.tcp.default = 5672
management.tcp.port = 15672
prometheus.tcp.port = 15692
# The image's conf.d defaults are replaced by this file: log to the console only.
log.console = true
log.console.level = info
log.file = false
loopback_users.guest = true
# Metrics come from the Prometheus plugin; the management UI keeps working without the collector.
management_agent.disable_metrics_collector = true
vm_memory_high_watermark.relative = {{ $r.memoryHighWatermark }}
disk_free_limit.absolute = {{ $r.diskFreeLimit }}
# Late acks: must exceed the longest time a message stays unacked by a worker,
# (worker.prefetchMultiplier * worker.taskTimeLimit + rabbitmq.consumerTimeoutMarginSeconds) s,
# and never below RabbitMQ's 30-minute default.
consumer_timeout = {{ include "celery-rabbitmq.rabbitmq.consumerTimeout" . }}
default_queue_type = {{ include "celery-rabbitmq.rabbitmq.defaultQueueType" . }}
{{- if include "celery-rabbitmq.rabbitmq.clustered" . }}
# Clustering (rabbitmq_peer_discovery_k8s). RabbitMQ >= 4.1: the pod with ordinal 0 is the seed node,
# the others join it; the seed's name is this node's RABBITMQ_NODENAME with the ordinal replaced, so no
# API access is needed. The three k8s.* keys below are only read by RabbitMQ < 4.1 (API-based listing
# of the headless Service); 4.1 accepts them and logs that it ignores them.
cluster_formation.peer_discovery_backend = rabbit_peer_discovery_k8s
cluster_formation.k8s.address_type = hostname
cluster_formation.k8s.service_name = {{ include "celery-rabbitmq.rabbitmq.headlessName" . }}
cluster_formation.k8s.hostname_suffix = .{{ include "celery-rabbitmq.rabbitmq.headlessName" . }}.{{ .Release.Namespace }}.svc.{{ .Values.clusterDomain }}
cluster_partition_handling = pause_minority
# Spread quorum queue leaders over the nodes instead of piling them on the declaring client's node.
queue_leader_locator = balanced
{{- end }}
{{- with $r.extraConfiguration }}
# rabbitmq.extraConfiguration
{{ . }}
{{- end }}
{{- end -}}

{{/*
Seconds the preStop hook may wait for quorum queues to have quorum + 1 online replicas. The hook runs
inside terminationGracePeriodSeconds: if it used all of it, the kubelet would SIGKILL the node right
after, without the orderly shutdown (queue/WAL flush) that SIGTERM triggers. Keep up to 30 s for that.
*/}}
{{- define "celery-rabbitmq.rabbitmq.preStopTimeout" -}}
{{- $grace := int .Values.rabbitmq.terminationGracePeriodSeconds -}}
{{- max 1 (sub $grace (min 30 (div $grace 2))) -}}
{{- end -}}

{{/*
Refuse an upgrade that removes nodes from a running cluster. A StatefulSet scale-down stops pods, but
RabbitMQ keeps them as cluster members and as quorum queue replicas: going from 3 to 1 node leaves every
quorum queue without a majority. Shrinking needs `rabbitmq-queues shrink` / `rabbitmqctl
forget_cluster_node` first, then rabbitmq.allowScaleDown=true. Stopping all nodes (0) stays allowed.
lookup is empty under `helm template`, so this only acts against a live release.
*/}}
{{- define "celery-rabbitmq.rabbitmq.validateScaleDown" -}}
{{- $r := .Values.rabbitmq -}}
{{- if and $r.enabled (not $r.allowScaleDown) (gt (int $r.replicaCount) 0) -}}
{{- $existing := lookup "apps/v1" "StatefulSet" .Release.Namespace (include "celery-rabbitmq.rabbitmq.fullname" .) | default dict -}}
{{- $current := int (dig "spec" "replicas" 0 $existing) -}}
{{- if lt (int $r.replicaCount) $current -}}
{{- fail (printf "rabbitmq.replicaCount: scaling the RabbitMQ cluster down from %d to %d nodes would leave quorum queues without a majority; remove the nodes from the cluster first (rabbitmq-queues shrink, rabbitmqctl forget_cluster_node), then set rabbitmq.allowScaleDown=true" $current (int $r.replicaCount)) -}}
{{- end -}}
{{- end -}}
{{- end -}}
