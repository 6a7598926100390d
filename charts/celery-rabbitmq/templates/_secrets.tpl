{{/*
Generated credentials: a value kept across upgrades (secretValue), Flower's basic-auth Secret, and the
plan of the Secrets the secrets hook creates instead of the chart (secrets.mode=hook).
*/}}

{{/*
A secret value that survives `helm upgrade`: the explicit value, else the one already stored in the
Secret (lookup; empty under `helm template`), else a new random one. Returns plain text.
Args: ctx, name (Secret), key, value, length.
*/}}
{{- define "celery-rabbitmq.secretValue" -}}
{{- if .value -}}
{{- .value -}}
{{- else -}}
{{- $existing := lookup "v1" "Secret" .ctx.Release.Namespace .name | default dict -}}
{{- $stored := dig "data" .key "" $existing -}}
{{- if $stored -}}
{{- $stored | b64dec -}}
{{- else -}}
{{- randAlphaNum (int .length) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Flower's basic-auth Secret and the key FLOWER_BASIC_AUTH reads (user:password). */}}
{{- define "celery-rabbitmq.flower.authSecretName" -}}
{{- .Values.flower.auth.existingSecret | default (include "celery-rabbitmq.flower.fullname" .) -}}
{{- end -}}

{{- define "celery-rabbitmq.flower.authSecretKey" -}}
{{- if .Values.flower.auth.existingSecret -}}{{ .Values.flower.auth.existingSecretKey }}{{- else -}}basic-auth{{- end -}}
{{- end -}}

{{/*
The Secrets holding a generated value (no explicit value, no existing Secret), as the secrets hook's plan
(files/create-secrets.py): name, labels, literal keys, generated keys with their length, derived keys.
No secret material: the values are made by the hook, inside the cluster. JSON list.
*/}}
{{- define "celery-rabbitmq.secrets.generated" -}}
{{- $plan := list -}}
{{- $r := .Values.rabbitmq -}}
{{- $f := .Values.flower -}}
{{- /* Not app.kubernetes.io/instance: Argo CD's label tracking would take the Secrets for its own,
extraneous objects and prune them. */ -}}
{{- $labels := dict "app.kubernetes.io/name" (include "celery-rabbitmq.name" .) "app.kubernetes.io/part-of" (include "celery-rabbitmq.name" .) "celery-rabbitmq/release" .Release.Name -}}
{{- if $r.enabled -}}
{{- if and (not $r.auth.existingSecret) (not $r.auth.password) -}}
{{- $plan = append $plan (dict "name" (include "celery-rabbitmq.rabbitmq.authSecretName" .) "labels" (merge (dict "app.kubernetes.io/component" "rabbitmq") $labels) "literal" (dict $r.auth.usernameKey $r.auth.username) "generated" (dict $r.auth.passwordKey 32)) -}}
{{- end -}}
{{- if and (not $r.auth.existingErlangCookieSecret) (not $r.auth.erlangCookie) -}}
{{- $plan = append $plan (dict "name" (include "celery-rabbitmq.rabbitmq.erlangCookieSecretName" .) "labels" (merge (dict "app.kubernetes.io/component" "rabbitmq") $labels) "generated" (dict $r.auth.erlangCookieKey 64)) -}}
{{- end -}}
{{- end -}}
{{- if and $f.enabled $f.auth.enabled (not $f.auth.existingSecret) (not $f.auth.password) -}}
{{- $plan = append $plan (dict "name" (include "celery-rabbitmq.flower.authSecretName" .) "labels" (merge (dict "app.kubernetes.io/component" "flower") $labels) "literal" (dict "username" $f.auth.username) "generated" (dict "password" 24) "derived" (dict "basic-auth" "{username}:{password}")) -}}
{{- end -}}
{{- toJson $plan -}}
{{- end -}}

{{/* The secrets hook's plan: the generated Secrets with secrets.mode=hook, else none. JSON list. */}}
{{- define "celery-rabbitmq.secrets.hookPlan" -}}
{{- if eq .Values.secrets.mode "hook" -}}
{{- include "celery-rabbitmq.secrets.generated" . -}}
{{- else -}}
[]
{{- end -}}
{{- end -}}

{{/* "true" when the secrets hook creates the Secret named `name` (so the chart must not render it). Args: ctx, name. */}}
{{- define "celery-rabbitmq.secrets.byHook" -}}
{{- range (include "celery-rabbitmq.secrets.hookPlan" .ctx | fromJsonArray) -}}
{{- if eq .name $.name -}}true{{- end -}}
{{- end -}}
{{- end -}}
