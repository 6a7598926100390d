{{/*
The bundled broker (rabbitmq.enabled): whether it is clustered, its Erlang cookie Secret, and its
configuration files, rendered into the ConfigMap (and hashed into the pod annotation).
*/}}

{{/* "true" when the bundled broker runs several nodes. */}}
{{- define "celery-rabbitmq.rabbitmq.clustered" -}}
{{- if and .Values.rabbitmq.enabled (gt (int .Values.rabbitmq.replicaCount) 1) -}}true{{- end -}}
{{- end -}}

{{/* "true" when the peer-discovery Role/RoleBinding (and RabbitMQ's own ServiceAccount) are rendered. */}}
{{- define "celery-rabbitmq.rabbitmq.rbac" -}}
{{- if and (include "celery-rabbitmq.rabbitmq.clustered" .) .Values.rabbitmq.rbac.create -}}true{{- end -}}
{{- end -}}

{{/* The Secret with the Erlang cookie every node of the cluster shares: rabbitmq.auth.existingErlangCookieSecret,
else the chart's. Only the nodes read it, never the clients. */}}
{{- define "celery-rabbitmq.rabbitmq.erlangCookieSecretName" -}}
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
{{- with include "celery-rabbitmq.rabbitmq.memoryWatermarkBytes" . }}
# rabbitmq.memoryHighWatermark x rabbitmq.resources.limits.memory: RabbitMQ may not see the container's
# memory limit (cgroup) and would take the node's memory for the relative watermark.
vm_memory_high_watermark.absolute = {{ . }}
{{- end }}
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
A Kubernetes quantity (512Mi, 1Gi, 1G, 500M, 1.5Gi, 1073741824) in bytes, rounded up as the kubelet
does; "" when absent or not a quantity. Args: the quantity.
*/}}
{{- define "celery-rabbitmq.quantityBytes" -}}
{{- $pattern := "^([0-9]+(\\.[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E|m)?$" -}}
{{- $factors := dict "" 1.0 "m" 0.001 "k" 1e3 "M" 1e6 "G" 1e9 "T" 1e12 "P" 1e15 "E" 1e18 "Ki" 1024.0 "Mi" 1048576.0 "Gi" 1073741824.0 "Ti" 1099511627776.0 "Pi" 1125899906842624.0 "Ei" 1152921504606846976.0 -}}
{{- if or (kindIs "float64" .) (kindIs "int" .) (kindIs "int64" .) -}}
{{- printf "%.0f" (ceil (float64 .)) -}}
{{- else if and (kindIs "string" .) (regexMatch $pattern .) -}}
{{- $number := float64 (regexReplaceAll $pattern . "${1}") -}}
{{- $factor := get $factors (regexReplaceAll $pattern . "${3}") -}}
{{- printf "%.0f" (ceil (mulf $number $factor)) -}}
{{- end -}}
{{- end -}}

{{/* vm_memory_high_watermark.absolute in bytes: floor(memoryHighWatermark x the memory limit); "" without a limit. */}}
{{- define "celery-rabbitmq.rabbitmq.memoryWatermarkBytes" -}}
{{- $r := .Values.rabbitmq -}}
{{- with include "celery-rabbitmq.quantityBytes" (dig "limits" "memory" "" ($r.resources | default dict)) -}}
{{- printf "%.0f" (floor (mulf (float64 .) (float64 $r.memoryHighWatermark))) -}}
{{- end -}}
{{- end -}}
