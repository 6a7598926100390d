{{/*
The broker as its clients (worker, producer, Flower, beat, the test pod, KEDA) see it: address, and the
Secrets and keys of its user and password, whichever broker is used (bundled: rabbitmq.*; external:
externalBroker.*). The env block built from them is in _env.tpl.
*/}}

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

{{/* The bundled broker's credentials Secret (user and password): rabbitmq.auth.existingSecret, else the
chart's (rabbitmq-secret.yaml, or the secrets hook). */}}
{{- define "celery-rabbitmq.rabbitmq.authSecretName" -}}
{{- .Values.rabbitmq.auth.existingSecret | default (include "celery-rabbitmq.rabbitmq.fullname" .) -}}
{{- end -}}

{{/* The Secret the chart itself renders for externalBroker.username (broker-username-secret.yaml), when the user
comes from no externalBroker.usernameKey: not the user's externalBroker.existingSecret. */}}
{{- define "celery-rabbitmq.externalBroker.chartUsernameSecretName" -}}
{{- include "celery-rabbitmq.componentName" (dict "ctx" . "suffix" "broker-username") -}}
{{- end -}}

{{/* Secret and key holding the broker user name: the user travels like the password, by secretKeyRef.
Bundled broker: the (generated or existing) broker Secret, key rabbitmq.auth.usernameKey. External broker:
externalBroker.existingSecret under externalBroker.usernameKey, else the chart-owned Secret rendering
externalBroker.username. */}}
{{- define "celery-rabbitmq.broker.usernameSecretName" -}}
{{- if .Values.rabbitmq.enabled -}}
{{- include "celery-rabbitmq.rabbitmq.authSecretName" . -}}
{{- else if .Values.externalBroker.usernameKey -}}
{{- .Values.externalBroker.existingSecret -}}
{{- else -}}
{{- include "celery-rabbitmq.externalBroker.chartUsernameSecretName" . -}}
{{- end -}}
{{- end -}}

{{- define "celery-rabbitmq.broker.usernameKey" -}}
{{- if .Values.rabbitmq.enabled -}}
{{- .Values.rabbitmq.auth.usernameKey -}}
{{- else -}}
{{- .Values.externalBroker.usernameKey | default "username" -}}
{{- end -}}
{{- end -}}

{{/* The Secret holding the broker password: the bundled broker's credentials Secret, or
externalBroker.existingSecret (which also holds the URL when externalBroker.urlKey is set). */}}
{{- define "celery-rabbitmq.broker.passwordSecretName" -}}
{{- if .Values.rabbitmq.enabled -}}
{{- include "celery-rabbitmq.rabbitmq.authSecretName" . -}}
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
Checksum of what the broker credentials Secret is made of (not of its generated content, which differs
per render): pods roll when the values that shape it change, a generated password never changes.
*/}}
{{- define "celery-rabbitmq.broker.credentialsChecksum" -}}
{{- if .Values.rabbitmq.enabled -}}
{{- toJson .Values.rabbitmq.auth | sha256sum -}}
{{- else -}}
{{- toJson .Values.externalBroker | sha256sum -}}
{{- end -}}
{{- end -}}
