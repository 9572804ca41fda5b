{{- define "wavelet-operator.name" -}}
{{- .Values.nameOverride | default .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's name, unless it already contains the chart's. */}}
{{- define "wavelet-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := include "wavelet-operator.name" . }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "wavelet-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "wavelet-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "wavelet-operator.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "wavelet-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "wavelet-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- .Values.serviceAccount.name | default (include "wavelet-operator.fullname" .) }}
{{- else }}
{{- .Values.serviceAccount.name | default "default" }}
{{- end }}
{{- end }}

{{/* An image reference from {repository, tag, digest}: the digest wins; the tag defaults to appVersion. */}}
{{- define "wavelet-operator.image" -}}
{{- $image := index . 0 }}{{ $appVersion := index . 1 -}}
{{- if $image.digest }}
{{- printf "%s@%s" $image.repository $image.digest }}
{{- else }}
{{- printf "%s:%s" $image.repository ($image.tag | default $appVersion) }}
{{- end }}
{{- end }}

{{/*
What the operator does to WaveletModels and their children, as a ClusterRole or a Role per
watched namespace. Nothing more: it reads the API key and TLS Secrets it is given, deletes only
its own pods of an outdated template, and never writes its own CRD.
*/}}
{{- define "wavelet-operator.rules" -}}
# patch: handled annotations are removed, and a rollback restores the spec, by a JSON patch
# that tests the resourceVersion first.
- apiGroups: [wavelet.dev]
  resources: [waveletmodels]
  verbs: [get, list, watch, patch]
- apiGroups: [wavelet.dev]
  resources: [waveletmodels/status]
  verbs: [patch]
# Owner references with blockOwnerDeletion need this where OwnerReferencesPermissionEnforcement is on.
- apiGroups: [wavelet.dev]
  resources: [waveletmodels/finalizers]
  verbs: [update]
- apiGroups: [apps]
  resources: [replicasets]
  verbs: [get, list, watch, create, patch]
{{- if .Values.migrateDeployments }}
# Only to replace the Deployments an operator from before ReplicaSets made (migrateDeployments).
- apiGroups: [apps]
  resources: [deployments]
  verbs: [list, watch, delete]
{{- end }}
- apiGroups: [""]
  resources: [services]
  verbs: [get, list, watch, create, patch]
- apiGroups: [autoscaling]
  resources: [horizontalpodautoscalers]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [policy]
  resources: [poddisruptionbudgets]
  verbs: [get, list, watch, create, patch]
# spec.ingress and spec.route; delete when the spec drops them. HTTPRoutes are watched only
# where the Gateway API's CRDs are installed (the rule is harmless without them).
- apiGroups: [networking.k8s.io]
  resources: [ingresses]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [gateway.networking.k8s.io]
  resources: [httproutes]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [""]
  resources: [events]
  verbs: [create]
# Secrets: watched as metadata only (names and versions, never their data), so the version of
# each API key Secret a model names goes into its pod template's hash and a rotated key rolls out
# at once; read (get) for the key analysis sends, and a TLS Secret's certificate (checked once per
# version, and trusted by analysis). With watchNamespaces, per namespace.
- apiGroups: [""]
  resources: [secrets]
  verbs: [get, list, watch]
# A colour's ready replicas are counted from its pods (operator/src/reconcile/colorstate.ts);
# an idle colour's pods of an older template are deleted (its ReplicaSet makes new ones).
- apiGroups: [""]
  resources: [pods]
  verbs: [list, watch, delete]
# The old colour is scaled down once the active Service's endpoints no longer list its pods.
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [list]
{{- end }}

{{/* The custom metrics API (metricsApi): its Service, Secret, and the APIService's fixed name. */}}
{{- define "wavelet-operator.metricsApi.serviceName" -}}
{{- printf "%s-metrics-api" (include "wavelet-operator.fullname" .) }}
{{- end }}

{{- define "wavelet-operator.metricsApi.secretName" -}}
{{- printf "%s-metrics-api-tls" (include "wavelet-operator.fullname" .) }}
{{- end }}

{{- define "wavelet-operator.metricsApi.apiServiceName" -}}
v1beta2.custom.metrics.k8s.io
{{- end }}

{{/*
The APIService of another provider, if the cluster has one: "<namespace>/<name>" of the Service
that serves it, or "" when there is none or it is this release's (Helm's ownership annotations
name this release). helm template looks in no cluster: "" there.
*/}}
{{- define "wavelet-operator.metricsApi.otherProvider" -}}
{{- $existing := lookup "apiregistration.k8s.io/v1" "APIService" "" (include "wavelet-operator.metricsApi.apiServiceName" .) }}
{{- if $existing }}
{{- $annotations := $existing.metadata.annotations | default dict }}
{{- $releaseName := index $annotations "meta.helm.sh/release-name" | default "" }}
{{- $releaseNamespace := index $annotations "meta.helm.sh/release-namespace" | default "" }}
{{- if not (and (eq $releaseName .Release.Name) (eq $releaseNamespace .Release.Namespace)) }}
{{- with ($existing.spec | default dict).service }}
{{- printf "%s/%s" .namespace .name }}
{{- else }}
{{- print "the API server itself (an APIService without a service)" }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/* "true" when the chart renders the APIService: metricsApi.registerAPIService, auto by the rule above. */}}
{{- define "wavelet-operator.metricsApi.register" -}}
{{- $mode := .Values.metricsApi.registerAPIService }}
{{- if and .Values.metricsApi.enabled (or (eq $mode "always") (and (eq $mode "auto") (not (include "wavelet-operator.metricsApi.otherProvider" .)))) }}
{{- print "true" }}
{{- end }}
{{- end }}
