{{/*
Values keys renamed in this release, read under their former names for one more release: a former key,
when set, wins (a default cannot tell "set" from "left alone"), and NOTES.txt asks to rename it. Templates
read these helpers, never the keys themselves.
*/}}

{{/* The renames: former key -> new key (documentation of both in values.yaml). */}}
{{- define "celery-rabbitmq.deprecated.renames" -}}
{{- $v := .Values -}}
{{- $found := list -}}
{{- if not (kindIs "invalid" $v.celery.deliveryLimit) -}}
{{- $found = append $found "celery.deliveryLimit is now celery.queueDeliveryLimit" -}}
{{- end -}}
{{- if not (kindIs "invalid" $v.flower.containerPort) -}}
{{- $found = append $found "flower.containerPort is now flower.port" -}}
{{- end -}}
{{- join "\n" $found -}}
{{- end -}}

{{/* QUEUE_DELIVERY_LIMIT: celery.queueDeliveryLimit, or its former name. */}}
{{- define "celery-rabbitmq.celery.queueDeliveryLimit" -}}
{{- $c := .Values.celery -}}
{{- ternary $c.queueDeliveryLimit $c.deliveryLimit (kindIs "invalid" $c.deliveryLimit) -}}
{{- end -}}

{{/* FLOWER_PORT and Flower's container port: flower.port, or its former name. */}}
{{- define "celery-rabbitmq.flower.port" -}}
{{- $f := .Values.flower -}}
{{- ternary $f.port $f.containerPort (kindIs "invalid" $f.containerPort) -}}
{{- end -}}
