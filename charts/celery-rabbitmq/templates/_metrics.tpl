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
