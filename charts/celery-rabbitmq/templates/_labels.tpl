{{/*
Labels and object metadata. Selector labels never change across upgrades (a Deployment's selector is
immutable); user labels (commonLabels, podLabels) are added but never override the chart's.
*/}}

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
