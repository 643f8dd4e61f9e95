{{- define "motcua.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}{{ .Release.Name | trunc 50 | trimSuffix "-" }}{{- else -}}{{ printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" }}{{- end -}}
{{- end -}}

{{- define "motcua.labels" -}}
app.kubernetes.io/part-of: motcua
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* Selector labels of one service: (dict "root" $ "name" "intake") */}}
{{- define "motcua.selector" -}}
app.kubernetes.io/name: {{ .name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- end -}}

{{/* The name label alone, beside motcua.labels (which already has the instance). */}}
{{- define "motcua.nameLabel" -}}
app.kubernetes.io/name: {{ .name }}
{{- end -}}

{{- define "motcua.secretName" -}}
{{- if .Values.secrets.existingSecret -}}{{ .Values.secrets.existingSecret }}{{- else -}}{{ include "motcua.fullname" . }}{{- end -}}
{{- end -}}

{{- define "motcua.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* The Secret keys each value maps to, and which production requires. */}}
{{- define "motcua.secretKeys" -}}
jwtSecret: {key: jwt-secret, required: true, generate: text}
mongodbUrl: {key: mongodb-url, required: true}
amqpUrlIntake: {key: amqp-url-intake, required: true}
amqpUrlReview: {key: amqp-url-review, required: true}
amqpUrlNotify: {key: amqp-url-notify, required: true}
amqpUrlAudit: {key: amqp-url-audit, required: true}
auditHmacKey: {key: audit-hmac-key, required: true, generate: text}
auditSigningKey: {key: audit-signing-key, required: true, generate: seed}
portalSessionSecret: {key: portal-session-secret, required: true, generate: text}
portalOidcClientSecret: {key: portal-oidc-client-secret, required: false}
notifySmtpPassword: {key: notify-smtp-password, required: false}
notifySmsApiKey: {key: notify-sms-api-key, required: false}
notifySmsInboundSecret: {key: notify-sms-inbound-secret, required: false}
notifyZaloAccessToken: {key: notify-zalo-access-token, required: false}
rabbitmqManagementUser: {key: rabbitmq-management-user, required: false}
rabbitmqManagementPassword: {key: rabbitmq-management-password, required: false}
rabbitmqDefinitions: {key: rabbitmq-definitions.json, required: false}
{{- end -}}

{{/* The data of the Secret this release created before (empty under `helm template`): what an
upgrade keeps for every value not given again, so no password or key changes on upgrade. */}}
{{- define "motcua.previousSecretData" -}}
{{- $previous := lookup "v1" "Secret" .Release.Namespace (include "motcua.fullname" .) | default dict -}}
{{- get $previous "data" | default dict | toYaml -}}
{{- end -}}

{{/* Fails rendering in production when a required secret is missing (neither given nor kept
from the previous release's Secret). */}}
{{- define "motcua.checkSecrets" -}}
{{- if and (eq .Values.environment "production") (not .Values.secrets.existingSecret) -}}
{{- $keys := include "motcua.secretKeys" . | fromYaml -}}
{{- $previous := include "motcua.previousSecretData" . | fromYaml -}}
{{- range $name, $spec := $keys -}}
{{- if and $spec.required (not (index $.Values.secrets.values $name)) (not (hasKey $previous $spec.key)) -}}
{{- fail (printf "production: set secrets.existingSecret, or secrets.values.%s (Secret key %s)" $name $spec.key) -}}
{{- end -}}
{{- end -}}
{{- if and $.Values.setup.importDefinitions (not $.Values.secrets.values.rabbitmqDefinitions) -}}
{{- fail "production: setup.importDefinitions needs secrets.values.rabbitmqDefinitions (or secrets.existingSecret)" -}}
{{- end -}}
{{- end -}}
{{- if not (has .Values.environment (list "development" "production")) -}}
{{- fail "environment must be development or production" -}}
{{- end -}}
{{- end -}}

{{/* A secretKeyRef env entry that tolerates a missing key in development. */}}
{{- define "motcua.secretEnv" -}}
- name: {{ .env }}
  valueFrom:
    secretKeyRef:
      name: {{ include "motcua.secretName" .root }}
      key: {{ .key }}
      optional: {{ not .required }}
{{- end -}}

{{/* Environment common to the services and the setup Job. */}}
{{- define "motcua.commonEnv" -}}
- name: MOTCUA_ENV
  value: {{ .Values.environment | quote }}
# The root file system is read-only: caches (fontconfig for the portal's PDFs) go to /tmp.
- name: XDG_CACHE_HOME
  value: /tmp/.cache
{{- range $k, $v := .Values.env }}
- name: {{ $k }}
  value: {{ $v | quote }}
{{- end }}
{{ include "motcua.secretEnv" (dict "root" . "env" "MOTCUA_MONGODB_URL" "key" "mongodb-url" "required" (eq .Values.environment "production")) }}
{{ include "motcua.secretEnv" (dict "root" . "env" "MOTCUA_JWT_SECRET" "key" "jwt-secret" "required" (eq .Values.environment "production")) }}
{{- end -}}
