{{/* Names, labels and image references shared by the templates. */}}

{{- define "sluice.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* <release>-sluice, or the release name alone when it already contains the chart name. */}}
{{- define "sluice.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "sluice.broker.fullname" -}}
{{- printf "%s-broker" (include "sluice.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "sluice.broker.headless" -}}
{{- printf "%s-broker-headless" (include "sluice.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "sluice.controller.fullname" -}}
{{- printf "%s-controller" (include "sluice.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "sluice.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "sluice.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: sluice
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "sluice.broker.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sluice.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: broker
{{- end -}}

{{- define "sluice.controller.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sluice.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: controller
{{- end -}}

{{- define "sluice.broker.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "sluice.broker.fullname" .) .Values.serviceAccount.brokerName -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.brokerName -}}
{{- end -}}
{{- end -}}

{{- define "sluice.controller.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "sluice.controller.fullname" .) .Values.serviceAccount.controllerName -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.controllerName -}}
{{- end -}}
{{- end -}}

{{- define "sluice.broker.image" -}}
{{- printf "%s:%s" .Values.broker.image.repository (default .Chart.AppVersion .Values.broker.image.tag) -}}
{{- end -}}

{{- define "sluice.controller.image" -}}
{{- printf "%s:%s" .Values.controller.image.repository (default .Chart.AppVersion .Values.controller.image.tag) -}}
{{- end -}}

{{/* The broker admin URL the controller uses: the client Service, in-cluster DNS. */}}
{{- define "sluice.broker.adminURL" -}}
{{- printf "http://%s.%s.svc.%s:%d" (include "sluice.broker.fullname" .) .Release.Namespace .Values.clusterDomain (int .Values.broker.ports.admin) -}}
{{- end -}}

{{/* Kafka bootstrap servers for clients in the cluster: the client Service. */}}
{{- define "sluice.broker.bootstrap" -}}
{{- printf "%s.%s.svc.%s:%d" (include "sluice.broker.fullname" .) .Release.Namespace .Values.clusterDomain (int .Values.broker.ports.kafka) -}}
{{- end -}}

{{- define "sluice.leaseName" -}}
{{- default (include "sluice.controller.fullname" .) .Values.controller.leaderElection.leaseName -}}
{{- end -}}

{{/* Pod and container security settings both workloads share: non-root uid 10001,
     read-only root, no capabilities, RuntimeDefault seccomp. */}}
{{- define "sluice.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
fsGroupChangePolicy: OnRootMismatch
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "sluice.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: [ALL]
{{- end -}}
