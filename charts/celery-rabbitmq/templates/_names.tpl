{{/*
Object names. Every name is <fullname>-<suffix>, bounded to a DNS label (boundedName); each component's
objects share its name helper, so a Service, a Deployment and what points at them cannot drift apart.
*/}}

{{- define "celery-rabbitmq.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
The unbounded base of every object name: fullnameOverride, else <release>-<chart name> (the release
alone when it already contains the chart name). Never used as is: see boundedName.
*/}}
{{- define "celery-rabbitmq.baseName" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
<base>-<suffix> in at most `max` characters, a DNS-1035 label (Service names need one; every name gets the
same base, so objects of a release share their prefix). Release names may be 53 characters, start with a
digit or hold dots: when the base has to change (cut to fit, dots made dashes, "r-" put before a leading
digit), it is cut further and "-<5 hex of sha256(base)>" appended, so two releases whose long names differ
only past the cut still get different names. The suffix is never cut, names never end in "-".
Names that already fit are unchanged (upgrades keep their objects). Args: ctx, suffix ("" for none), max.
*/}}
{{- define "celery-rabbitmq.boundedName" -}}
{{- $raw := include "celery-rabbitmq.baseName" .ctx -}}
{{- $base := replace "." "-" $raw -}}
{{- if regexMatch "^[0-9]" $base -}}
{{- $base = printf "r-%s" $base -}}
{{- end -}}
{{- $tail := ternary "" (printf "-%s" .suffix) (empty .suffix) -}}
{{- $room := sub (int .max) (len $tail) | int -}}
{{- if and (eq $base $raw) (le (len $base) $room) -}}
{{- printf "%s%s" $base $tail -}}
{{- else -}}
{{- $cut := regexReplaceAll "-+$" (trunc (sub $room 6 | int) $base) "" -}}
{{- printf "%s-%s%s" $cut (sha256sum $raw | trunc 5) $tail -}}
{{- end -}}
{{- end -}}

{{/* The full name (default ServiceAccount name, and the prefix of every other name), <= 63 characters. */}}
{{- define "celery-rabbitmq.fullname" -}}
{{- include "celery-rabbitmq.boundedName" (dict "ctx" . "suffix" "" "max" 63) -}}
{{- end -}}

{{/* <fullname>-<suffix> within `max` characters (default 63, a DNS label). Args: ctx, suffix, max. */}}
{{- define "celery-rabbitmq.componentName" -}}
{{- include "celery-rabbitmq.boundedName" (dict "ctx" .ctx "suffix" .suffix "max" (.max | default 63)) -}}
{{- end -}}

{{/* One name per component: its Deployment, Service, PDB, HPA... share it. */}}
{{- define "celery-rabbitmq.worker.fullname" -}}
{{- include "celery-rabbitmq.componentName" (dict "ctx" . "suffix" "worker") -}}
{{- end -}}

{{- define "celery-rabbitmq.producer.fullname" -}}
{{- include "celery-rabbitmq.componentName" (dict "ctx" . "suffix" "producer") -}}
{{- end -}}

{{/* Flower's Deployment, Service, PVC, NetworkPolicy, ServiceMonitor job and default auth Secret. */}}
{{- define "celery-rabbitmq.flower.fullname" -}}
{{- include "celery-rabbitmq.componentName" (dict "ctx" . "suffix" "flower") -}}
{{- end -}}

{{- define "celery-rabbitmq.beat.fullname" -}}
{{- include "celery-rabbitmq.componentName" (dict "ctx" . "suffix" "beat") -}}
{{- end -}}

{{/* The secrets hook's Job, ServiceAccount, Role and RoleBinding (secrets.mode=hook). */}}
{{- define "celery-rabbitmq.secretsHook.fullname" -}}
{{- include "celery-rabbitmq.componentName" (dict "ctx" . "suffix" "secrets") -}}
{{- end -}}

{{/*
The StatefulSet's name, and that of the broker's ConfigMap, Secret, NetworkPolicy, PDB, ServiceAccount
and default Service: at most 52 characters, because the controller labels each revision with
controller-revision-hash=<name>-<10-character hash>, a label value (<= 63). Its pods are <name>-<ordinal>
(<= 55, valid hostnames); its PVCs data-<name>-<ordinal>.
*/}}
{{- define "celery-rabbitmq.rabbitmq.fullname" -}}
{{- include "celery-rabbitmq.componentName" (dict "ctx" . "suffix" "rabbitmq" "max" 52) -}}
{{- end -}}

{{- define "celery-rabbitmq.rabbitmq.headlessName" -}}
{{- include "celery-rabbitmq.componentName" (dict "ctx" . "suffix" "rabbitmq-headless") -}}
{{- end -}}

{{- define "celery-rabbitmq.rabbitmq.serviceName" -}}
{{- .Values.rabbitmq.service.name | default (include "celery-rabbitmq.rabbitmq.fullname" .) -}}
{{- end -}}

{{/* The peer-discovery Role and its RoleBinding (clustered broker, rabbitmq.rbac.create). */}}
{{- define "celery-rabbitmq.rabbitmq.peerDiscoveryName" -}}
{{- include "celery-rabbitmq.componentName" (dict "ctx" . "suffix" "rabbitmq-peer-discovery") -}}
{{- end -}}

{{/* The ServiceAccount of the taskqueue pods (and of the broker when it needs no RBAC of its own). */}}
{{- define "celery-rabbitmq.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "celery-rabbitmq.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "celery-rabbitmq.rabbitmq.serviceAccountName" -}}
{{- if .Values.rabbitmq.serviceAccount.create -}}
{{- default (include "celery-rabbitmq.rabbitmq.fullname" .) .Values.rabbitmq.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.rabbitmq.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* PVC names: the user's existing claim, else the chart's (rendered only then). */}}
{{- define "celery-rabbitmq.flower.claimName" -}}
{{- .Values.flower.persistence.existingClaim | default (include "celery-rabbitmq.flower.fullname" .) -}}
{{- end -}}

{{- define "celery-rabbitmq.beat.claimName" -}}
{{- .Values.beat.persistence.existingClaim | default (include "celery-rabbitmq.beat.fullname" .) -}}
{{- end -}}
