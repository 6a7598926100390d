{{/*
Every rule the schema cannot express, in one place. Each problem names the key(s) to change and why; all
problems of a render are collected and reported together by one fail, so a values file is fixed in one
go. Rendered from templates/validate/validate.yaml, first of all templates, so it runs for every render.
No other template calls fail or required: a new rule goes here, as one more message that starts with the
values key it is about.
(values.schema.json is checked by helm itself, before any template.)
*/}}
{{- define "celery-rabbitmq.validate" -}}
{{- $v := .Values -}}
{{- $w := $v.worker -}}
{{- $r := $v.rabbitmq -}}
{{- $e := list -}}

{{- /* Images */ -}}
{{- if and $r.enabled (not $r.image.tag) (not $r.image.digest) -}}
  {{- $e = append $e "rabbitmq.image.tag must not be empty: the RabbitMQ image has no default tag here (it would render `rabbitmq:`); pin a tag such as 4.1.4-management, or set rabbitmq.image.digest" -}}
{{- end -}}

{{- /* Broker */ -}}
{{- if $r.enabled -}}
  {{- if eq (lower $r.auth.username) "guest" -}}
    {{- $e = append $e "rabbitmq.auth.username must not be \"guest\": RabbitMQ refuses guest from other hosts; choose another user" -}}
  {{- end -}}
  {{- if eq $r.auth.usernameKey $r.auth.passwordKey -}}
    {{- $e = append $e "rabbitmq.auth.usernameKey must differ from rabbitmq.auth.passwordKey: the user and the password are separate keys of the broker Secret" -}}
  {{- end -}}
  {{- if or $v.externalBroker.host $v.externalBroker.existingSecret $v.externalBroker.urlKey -}}
    {{- $e = append $e "externalBroker is set but rabbitmq.enabled is true: set rabbitmq.enabled=false to use the external broker, or clear externalBroker" -}}
  {{- end -}}
  {{- $n := int $r.replicaCount -}}
  {{- if eq $n 2 -}}
    {{- $e = append $e "rabbitmq.replicaCount=2 is refused: two nodes cannot keep a quorum through the loss of one (a majority of 2 is 2, so pause_minority pauses the survivor and quorum queues stop); use 1, or 3 or more (odd counts preferred)" -}}
  {{- end -}}
  {{- if and (gt $n 2) $r.pdb.enabled -}}
    {{- $mu := $r.pdb.maxUnavailable -}}
    {{- $down := 0 -}}
    {{- if kindIs "string" $mu -}}
      {{- /* A percentage: the disruption controller rounds it up. */ -}}
      {{- $down = div (add (mul $n (int (trimSuffix "%" $mu))) 99) 100 -}}
    {{- else -}}
      {{- $down = int $mu -}}
    {{- end -}}
    {{- $majorityKeeps := div (sub $n 1) 2 -}}
    {{- if lt (int $down) 1 -}}
      {{- $e = append $e (printf "rabbitmq.pdb.maxUnavailable (%v) must let at least one node be evicted: 0 blocks every node drain (cluster upgrades never finish)" $mu) -}}
    {{- else if gt (int $down) (int $majorityKeeps) -}}
      {{- $e = append $e (printf "rabbitmq.pdb.maxUnavailable (%v, i.e. %d of %d nodes) lets a drain take down a quorum: quorum queues and pause_minority need a majority up, so at most (replicaCount - 1) / 2 = %d node(s) may be unavailable" $mu (int $down) $n (int $majorityKeeps)) -}}
    {{- end -}}
  {{- end -}}
  {{- if not (include "celery-rabbitmq.quantityBytes" (dig "limits" "memory" "" ($r.resources | default dict))) -}}
    {{- $e = append $e "rabbitmq.resources.limits.memory is required (a quantity such as 1Gi): the broker's memory high watermark is rabbitmq.memoryHighWatermark x this limit in bytes (vm_memory_high_watermark.absolute), because RabbitMQ may not detect a container's memory limit itself" -}}
  {{- end -}}
  {{- /* Erlang node names: rabbit@<pod>.<headless Service>.<namespace>.svc.<clusterDomain>. The chart bounds
  its own names; the namespace and clusterDomain can still push the name past DNS (253) or Erlang (255). */ -}}
  {{- $pod := printf "%s-%d" (include "celery-rabbitmq.rabbitmq.fullname" .) (max 0 (sub $n 1)) -}}
  {{- $host := printf "%s.%s.%s.svc.%s" $pod (include "celery-rabbitmq.rabbitmq.headlessName" .) .Release.Namespace $v.clusterDomain -}}
  {{- if or (gt (len $host) 253) (gt (len (printf "rabbit@%s" $host)) 255) -}}
    {{- $e = append $e (printf "clusterDomain (%q) is too long for the RabbitMQ node names: %s has %d characters, DNS allows 253" $v.clusterDomain $host (len $host)) -}}
  {{- end -}}
  {{- /* Refuse an upgrade that removes nodes from a running cluster: removed nodes stay cluster members and
  quorum queue replicas. lookup is empty under `helm template`, so this only acts against a live release. */ -}}
  {{- if and (not $r.allowScaleDown) (gt $n 0) -}}
    {{- $existing := lookup "apps/v1" "StatefulSet" .Release.Namespace (include "celery-rabbitmq.rabbitmq.fullname" .) | default dict -}}
    {{- $current := int (dig "spec" "replicas" 0 $existing) -}}
    {{- if lt $n $current -}}
      {{- $e = append $e (printf "rabbitmq.replicaCount: scaling the RabbitMQ cluster down from %d to %d nodes would leave quorum queues without a majority; remove the nodes from the cluster first (rabbitmq-queues shrink, rabbitmqctl forget_cluster_node), then set rabbitmq.allowScaleDown=true" $current $n) -}}
    {{- end -}}
  {{- end -}}
{{- else -}}
  {{- if not $v.externalBroker.existingSecret -}}
    {{- $e = append $e "externalBroker.existingSecret is required when rabbitmq.enabled=false (the broker password or URL comes from it)" -}}
  {{- end -}}
  {{- if not $v.externalBroker.urlKey -}}
    {{- if not $v.externalBroker.host -}}
      {{- $e = append $e "externalBroker.host (or externalBroker.urlKey) is required when rabbitmq.enabled=false" -}}
    {{- end -}}
    {{- if and $v.externalBroker.username $v.externalBroker.usernameKey -}}
      {{- $e = append $e "externalBroker.username and externalBroker.usernameKey are mutually exclusive: the user comes either from the value or from externalBroker.existingSecret; set one" -}}
    {{- end -}}
    {{- if and $v.externalBroker.usernameKey (eq $v.externalBroker.usernameKey $v.externalBroker.passwordKey) -}}
      {{- $e = append $e "externalBroker.usernameKey must differ from externalBroker.passwordKey: the user and the password are separate keys of externalBroker.existingSecret" -}}
    {{- end -}}
    {{- if not (or $v.externalBroker.username $v.externalBroker.usernameKey) -}}
      {{- $e = append $e "externalBroker.username (or externalBroker.usernameKey) is required when rabbitmq.enabled=false and externalBroker.urlKey is empty" -}}
    {{- end -}}
    {{- if eq (lower $v.externalBroker.username) "guest" -}}
      {{- $e = append $e "externalBroker.username must not be \"guest\": choose another broker user" -}}
    {{- end -}}
  {{- end -}}
{{- end -}}

{{- /* Worker time limits and shutdown */ -}}
{{- if and (eq $w.pool "solo") (ne (int $w.concurrency) 1) -}}
  {{- $e = append $e (printf "worker.concurrency must be 1 with worker.pool solo (got %d): a solo worker runs one task at a time; scale with worker.replicaCount, or set worker.pool prefork" (int $w.concurrency)) -}}
{{- end -}}
{{- if ge (int $w.taskSoftTimeLimit) (int $w.taskTimeLimit) -}}
  {{- $e = append $e (printf "worker.taskSoftTimeLimit (%d) must be below worker.taskTimeLimit (%d)" (int $w.taskSoftTimeLimit) (int $w.taskTimeLimit)) -}}
{{- end -}}
{{- if not (kindIs "invalid" $w.terminationGracePeriodSeconds) -}}
  {{- if le (int $w.terminationGracePeriodSeconds) (int $w.taskTimeLimit) -}}
    {{- $e = append $e (printf "worker.terminationGracePeriodSeconds (%d) must exceed worker.taskTimeLimit (%d): a warm shutdown lets the running task finish" (int $w.terminationGracePeriodSeconds) (int $w.taskTimeLimit)) -}}
  {{- end -}}
{{- end -}}
{{- if le (float64 $w.health.maxAge) (float64 $w.health.interval) -}}
  {{- $e = append $e "worker.health.maxAge must exceed worker.health.interval, or every heartbeat would be stale" -}}
{{- end -}}
{{- if le (float64 $v.producer.health.maxAge) (float64 $v.producer.health.interval) -}}
  {{- $e = append $e "producer.health.maxAge must exceed producer.health.interval, or every heartbeat would be stale" -}}
{{- end -}}

{{- /* celery beat (beat.replicaCount is 0 or 1 by the schema: two beats would send every task twice) */ -}}
{{- $b := $v.beat -}}
{{- if $b.enabled -}}
  {{- if le (float64 $b.health.maxAge) (float64 $b.health.interval) -}}
    {{- $e = append $e "beat.health.maxAge must exceed beat.health.interval, or every heartbeat would be stale" -}}
  {{- end -}}
  {{- $names := list -}}
  {{- range $b.schedule -}}
    {{- if has .name $names -}}
      {{- $e = append $e (printf "beat.schedule: the name %q is used by two entries; each entry needs a name of its own (it keys beat's schedule state)" .name) -}}
    {{- end -}}
    {{- $names = append $names .name -}}
  {{- end -}}
{{- end -}}
{{- if and $w.pdb.enabled (or (and (not (kindIs "string" $w.pdb.maxUnavailable)) (eq (int $w.pdb.maxUnavailable) 0)) (and (kindIs "string" $w.pdb.maxUnavailable) (eq (int (trimSuffix "%" $w.pdb.maxUnavailable)) 0))) -}}
  {{- $e = append $e (printf "worker.pdb.maxUnavailable (%v) must let at least one worker be evicted: 0 blocks every node drain; use 1 (evictions still wait for each warm shutdown), or set worker.pdb.enabled=false" $w.pdb.maxUnavailable) -}}
{{- end -}}

{{- /* Autoscaling */ -}}
{{- if and $w.autoscaling.enabled $w.keda.enabled -}}
  {{- $e = append $e "worker.autoscaling.enabled and worker.keda.enabled are mutually exclusive: KEDA manages its own HPA; enable one" -}}
{{- end -}}
{{- if $w.autoscaling.enabled -}}
  {{- if lt (int $w.autoscaling.maxReplicas) (int $w.autoscaling.minReplicas) -}}
    {{- $e = append $e "worker.autoscaling.maxReplicas must be at least worker.autoscaling.minReplicas" -}}
  {{- end -}}
  {{- if and (kindIs "invalid" $w.autoscaling.targetCPUUtilizationPercentage) (kindIs "invalid" $w.autoscaling.targetMemoryUtilizationPercentage) -}}
    {{- $e = append $e "worker.autoscaling needs worker.autoscaling.targetCPUUtilizationPercentage or worker.autoscaling.targetMemoryUtilizationPercentage" -}}
  {{- end -}}
{{- end -}}
{{- if $w.keda.enabled -}}
  {{- if lt (int $w.keda.maxReplicaCount) (int $w.keda.minReplicaCount) -}}
    {{- $e = append $e "worker.keda.maxReplicaCount must be at least worker.keda.minReplicaCount" -}}
  {{- end -}}
  {{- if not (kindIs "invalid" $w.keda.cooldownPeriod) -}}
    {{- if lt (int $w.keda.cooldownPeriod) (int $w.taskTimeLimit) -}}
      {{- $e = append $e (printf "worker.keda.cooldownPeriod (%d) must be at least worker.taskTimeLimit (%d)" (int $w.keda.cooldownPeriod) (int $w.taskTimeLimit)) -}}
    {{- end -}}
  {{- end -}}
{{- end -}}

{{- /* Flower */ -}}
{{- $f := $v.flower -}}
{{- if and $f.enabled $f.persistence.enabled (eq $f.persistence.type "pvc") (gt (int $f.replicaCount) 1) -}}
  {{- $e = append $e "flower.persistence.enabled with type pvc needs flower.replicaCount <= 1: Flower's state file cannot be shared (or set flower.persistence.type=emptyDir)" -}}
{{- end -}}
{{- if and $f.enabled $f.auth.enabled (not $f.auth.existingSecret) (not $f.auth.username) -}}
  {{- $e = append $e "flower.auth.username is required when flower.auth.enabled and no flower.auth.existingSecret" -}}
{{- end -}}
{{- if and $f.enabled $v.networkPolicy.enabled (not $v.networkPolicy.flowerFrom) (or $f.ingress.enabled (ne $f.service.type "ClusterIP")) -}}
  {{- $e = append $e (printf "networkPolicy.flowerFrom must list who reaches Flower (e.g. the ingress controller's namespace) when it is exposed (flower.ingress.enabled=%v, flower.service.type=%s) with networkPolicy.enabled: Flower's port is open to no other source, because it also serves /metrics without authentication" $f.ingress.enabled $f.service.type) -}}
{{- end -}}

{{- /* Metrics */ -}}
{{- $sm := $v.metrics.serviceMonitor -}}
{{- if $sm.enabled -}}
  {{- if not $f.enabled -}}
    {{- $e = append $e "metrics.serviceMonitor.enabled needs flower.enabled: the Celery metrics (tasks by name and state, runtimes, workers up) are served by Flower's /metrics; enable Flower or leave the ServiceMonitors off" -}}
  {{- end -}}
  {{- if and $v.networkPolicy.enabled (not $v.networkPolicy.metricsFrom) -}}
    {{- $e = append $e "networkPolicy.metricsFrom must list the Prometheus that scrapes (e.g. a namespaceSelector for its namespace) when metrics.serviceMonitor.enabled with networkPolicy.enabled: the metrics ports admit no other source, so every scrape would be dropped" -}}
  {{- end -}}
  {{- $ms := dict -}}
  {{- range $key := list "interval" "scrapeTimeout" -}}
    {{- $d := get $sm $key | toString -}}
    {{- $total := 0 -}}
    {{- range $part := regexFindAll "[0-9]+(ms|h|m|s)" $d -1 -}}
      {{- $n := int (regexFind "^[0-9]+" $part) -}}
      {{- $unit := regexFind "(ms|h|m|s)$" $part -}}
      {{- $total = add $total (mul $n (get (dict "ms" 1 "s" 1000 "m" 60000 "h" 3600000) $unit)) -}}
    {{- end -}}
    {{- $_ := set $ms $key $total -}}
  {{- end -}}
  {{- if gt (int $ms.scrapeTimeout) (int $ms.interval) -}}
    {{- $e = append $e (printf "metrics.serviceMonitor.scrapeTimeout (%s) must not exceed metrics.serviceMonitor.interval (%s): Prometheus refuses such a scrape config" $sm.scrapeTimeout $sm.interval) -}}
  {{- end -}}
{{- end -}}

{{- /* Extension points: names of added containers and volumes, mounted volumes (below) */ -}}
{{- $e = concat $e (include "celery-rabbitmq.validate.extensions" . | fromJsonArray) -}}

{{- $pr := $v.metrics.prometheusRule -}}
{{- if and $pr.enabled (not $r.enabled) -}}
  {{- if not $pr.rabbitmqSelector -}}
    {{- $e = append $e "metrics.prometheusRule.rabbitmqSelector must select the external broker's series (e.g. job=\"rabbitmq\", namespace=\"messaging\") when rabbitmq.enabled=false: the default selects the bundled broker's Service" -}}
  {{- end -}}
  {{- if not (int $pr.rabbitmqNodes) -}}
    {{- $e = append $e "metrics.prometheusRule.rabbitmqNodes must be the external broker's node count (> 0) when rabbitmq.enabled=false: RabbitMQNodeDown and the quorum majority are counted from it" -}}
  {{- end -}}
{{- end -}}

{{- if $e -}}
  {{- fail (printf "\n%d value problem(s):\n- %s" (len $e) (join "\n- " $e)) -}}
{{- end -}}
{{- end -}}

{{/*
The extension values' problems the schema cannot see: container names used twice in a
pod or taken from the chart's, volumes named like the chart's or twice, mounts of volumes the pod lacks.
JSON list of messages.
*/}}
{{- define "celery-rabbitmq.validate.extensions" -}}
{{- $e := list -}}
{{- $reserved := include "celery-rabbitmq.extensions.reserved" . | fromJson -}}
{{- range $component := list "worker" "producer" "flower" "rabbitmq" "beat" "tests" -}}
  {{- $v := get $.Values $component | default dict -}}
  {{- if or (not (hasKey $v "enabled")) $v.enabled -}}
  {{- $r := get $reserved $component -}}
  {{- $containers := $r.containers -}}
  {{- range $key := list "extraInitContainers" "extraContainers" -}}
    {{- range (get $v $key | default list) -}}
      {{- if has .name $containers -}}
        {{- $e = append $e (printf "%s.%s: a container is named %q, which the %s pod already has (%s); choose another name" $component $key .name $component (join ", " $containers)) -}}
      {{- else -}}
        {{- $containers = append $containers .name -}}
      {{- end -}}
    {{- end -}}
  {{- end -}}
  {{- $volumes := $r.volumes -}}
  {{- range (get $v "extraVolumes" | default list) -}}
    {{- if has .name $volumes -}}
      {{- $e = append $e (printf "%s.extraVolumes: a volume is named %q, which the %s pod already has (%s); choose another name" $component .name $component (join ", " $volumes)) -}}
    {{- else -}}
      {{- $volumes = append $volumes .name -}}
    {{- end -}}
  {{- end -}}
  {{- range (get $v "extraVolumeMounts" | default list) -}}
    {{- if not (has .name $volumes) -}}
      {{- $e = append $e (printf "%s.extraVolumeMounts: %q mounts a volume the %s pod does not have; add it to %s.extraVolumes (volumes: %s)" $component .name $component $component (join ", " $volumes)) -}}
    {{- end -}}
  {{- end -}}
  {{- end -}}
{{- end -}}
{{- toJson $e -}}
{{- end -}}
