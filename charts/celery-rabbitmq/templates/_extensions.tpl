{{/*
Extension points of every pod (README: Extending the pods): extraVolumes, extraVolumeMounts,
extraInitContainers, extraContainers, envFrom and lifecycle of a component (worker, producer, flower,
rabbitmq, beat; the helm test pod takes envFrom, extraVolumes and extraVolumeMounts). Each value goes through `tpl`, so it may use the chart's templates and .Release, e.g.
image: '{{ include "celery-rabbitmq.image" . }}'. What a user adds is the user's: the chart applies no
securityContext or resources to added containers (give them, or restricted Pod Security refuses the pod).
Every template here takes Args: ctx (the root context), values (the component's values) and, where it
renders, indent (the column of the block).
*/}}

{{/* A value as YAML, its templates rendered. Args: ctx, value. */}}
{{- define "celery-rabbitmq.tplYaml" -}}
{{- tpl (toYaml .value) .ctx -}}
{{- end -}}

{{/* The items of the list values.<key>, on new lines at `indent`; nothing when empty. For appending to a
list the chart already renders (volumes, volumeMounts, containers, initContainers). Args: ctx, values,
key, indent. */}}
{{- define "celery-rabbitmq.extensionItems" -}}
{{- with get .values .key -}}
{{- include "celery-rabbitmq.tplYaml" (dict "ctx" $.ctx "value" .) | nindent (int $.indent) -}}
{{- end -}}
{{- end -}}

{{/* `field:` and its value, on new lines at `indent`; nothing when the value is empty. Args: ctx, field,
value, indent. */}}
{{- define "celery-rabbitmq.extensionField" -}}
{{- with .value -}}
{{- printf "%s:" $.field | nindent (int $.indent) -}}
{{- include "celery-rabbitmq.tplYaml" (dict "ctx" $.ctx "value" .) | nindent (add $.indent 2 | int) -}}
{{- end -}}
{{- end -}}

{{/*
The main container's envFrom and lifecycle. `lifecycle` (optional arg) is the chart's own hooks (the
broker's preStop when clustered): the user's hooks win, one by one (postStart, preStop, stopSignal).
Args: ctx, values, indent, lifecycle.
*/}}
{{- define "celery-rabbitmq.containerExtensions" -}}
{{- include "celery-rabbitmq.extensionField" (dict "ctx" .ctx "field" "envFrom" "value" .values.envFrom "indent" .indent) -}}
{{- $lifecycle := merge (deepCopy (.values.lifecycle | default dict)) (.lifecycle | default dict) -}}
{{- include "celery-rabbitmq.extensionField" (dict "ctx" .ctx "field" "lifecycle" "value" $lifecycle "indent" .indent) -}}
{{- end -}}

{{/* extraVolumeMounts, appended to the main container's volumeMounts. Args: ctx, values, indent. */}}
{{- define "celery-rabbitmq.extraVolumeMounts" -}}
{{- include "celery-rabbitmq.extensionItems" (merge (dict "key" "extraVolumeMounts") .) -}}
{{- end -}}

{{/* extraVolumes, appended to the pod's volumes. Args: ctx, values, indent. */}}
{{- define "celery-rabbitmq.extraVolumes" -}}
{{- include "celery-rabbitmq.extensionItems" (merge (dict "key" "extraVolumes") .) -}}
{{- end -}}

{{/* extraContainers (sidecars), appended to the pod's containers. Args: ctx, values, indent. */}}
{{- define "celery-rabbitmq.extraContainers" -}}
{{- include "celery-rabbitmq.extensionItems" (merge (dict "key" "extraContainers") .) -}}
{{- end -}}

{{/* extraInitContainers, appended to the init containers the chart runs (the broker's erlang-cookie).
Args: ctx, values, indent. */}}
{{- define "celery-rabbitmq.extraInitContainers" -}}
{{- include "celery-rabbitmq.extensionItems" (merge (dict "key" "extraInitContainers") .) -}}
{{- end -}}

{{/* `initContainers:` with extraInitContainers, for a pod that has no init container of its own; nothing
when there are none. Args: ctx, values, indent. */}}
{{- define "celery-rabbitmq.initContainers" -}}
{{- include "celery-rabbitmq.extensionField" (dict "ctx" .ctx "field" "initContainers" "value" .values.extraInitContainers "indent" .indent) -}}
{{- end -}}

{{/*
What the chart itself names in each component's pod: added containers and volumes must not take these
names (the API server would refuse the duplicate, or, for a volume, the chart's would be shadowed), and
extraVolumeMounts may mount these volumes besides extraVolumes. JSON: component -> {containers, volumes}.
*/}}
{{- define "celery-rabbitmq.extensions.reserved" -}}
{{- $flowerVolumes := list "tmp" -}}
{{- if .Values.flower.persistence.enabled -}}
{{- $flowerVolumes = append $flowerVolumes "data" -}}
{{- end -}}
{{- toJson (dict
  "worker" (dict "containers" (list "worker") "volumes" (list "tmp"))
  "producer" (dict "containers" (list "producer") "volumes" (list "tmp"))
  "flower" (dict "containers" (list "flower") "volumes" $flowerVolumes)
  "rabbitmq" (dict "containers" (list "rabbitmq" "erlang-cookie") "volumes" (list "config" "erlang-cookie" "logs" "tmp" "data"))
  "beat" (dict "containers" (list "beat") "volumes" (list "tmp" "beat-state"))
  "tests" (dict "containers" (list "test-add") "volumes" (list "tmp"))
) -}}
{{- end -}}
