{{/* Full name of the release's objects: the release name, with "-palisade" unless it already says so. */}}
{{- define "palisade.fullname" -}}
{{- if contains "palisade" .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-palisade" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Labels that select the operator pods (stable across upgrades). */}}
{{- define "palisade.selectorLabels" -}}
app.kubernetes.io/name: palisade-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* The standard label set of every object of the chart. */}}
{{- define "palisade.labels" -}}
{{ include "palisade.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: palisade
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "palisade.serviceAccountName" -}}
{{- default (include "palisade.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{- define "palisade.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{- define "palisade.authServerImage" -}}
{{- default (printf "ghcr.io/palisade-dev/auth-server:%s" .Chart.AppVersion) .Values.authServerImage -}}
{{- end -}}

{{/* "true" when the operator runs leader election. */}}
{{- define "palisade.leaderElect" -}}
{{- if or .Values.leaderElection.enabled (gt (int .Values.replicaCount) 1) -}}true{{- end -}}
{{- end -}}

{{- define "palisade.leaseName" -}}
{{- default (include "palisade.fullname" .) .Values.leaderElection.leaseName -}}
{{- end -}}

{{/*
What the operator does in the namespaces it watches, derived from operator/src (see
docs/security.md): nothing more. Used by the ClusterRole (cluster-wide) or by one Role per
watched namespace.
*/}}
{{- define "palisade.watchRules" -}}
# AuthProvider: watched by both controllers, read by the OAuthClient controller.
- apiGroups: [auth.palisade.dev]
  resources: [authproviders]
  verbs: [get, list, watch]
# OAuthClient: watched; patched only to add/remove the deregistration finalizer.
- apiGroups: [auth.palisade.dev]
  resources: [oauthclients]
  verbs: [get, list, watch, patch]
# Status of both kinds (merge patches of .status only).
- apiGroups: [auth.palisade.dev]
  resources: [authproviders/status, oauthclients/status]
  verbs: [patch]
# Owner references with blockOwnerDeletion on the objects the operator creates.
- apiGroups: [auth.palisade.dev]
  resources: [authproviders/finalizers, oauthclients/finalizers]
  verbs: [update]
# Secrets: generated keys/tokens (create once), the signing-key set (optimistic update on
# rotation), OAuthClient credentials (server-side apply); the database/Redis URL Secrets the
# user names are read to check they exist.
- apiGroups: [""]
  resources: [secrets]
  verbs: [get, list, watch, create, patch, update]
# Objects rendered for every AuthProvider, written with server-side apply.
- apiGroups: [""]
  resources: [services, serviceaccounts]
  verbs: [get, list, watch, create, patch]
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, list, watch, create, patch]
- apiGroups: [networking.k8s.io]
  resources: [networkpolicies]
  verbs: [get, list, watch, create, patch]
# Optional objects: deleted when the spec no longer asks for them.
- apiGroups: [autoscaling]
  resources: [horizontalpodautoscalers]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [policy]
  resources: [poddisruptionbudgets]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [networking.k8s.io]
  resources: [ingresses]
  verbs: [get, list, watch, create, patch, delete]
# Migration Jobs: created once per image, watched (owned objects) so their completion
# triggers a reconcile, deleted when a failed one is retried.
- apiGroups: [batch]
  resources: [jobs]
  verbs: [get, list, watch, create, delete]
# Rollout record ConfigMap `<provider>-rollout` (server-side apply; watched as a cache).
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get, list, watch, create, patch]
# Pods of a rollout (restarts, readiness) and of a migration Job (termination message).
# Never pod logs, never exec.
- apiGroups: [""]
  resources: [pods]
  verbs: [list]
# Events on AuthProviders and OAuthClients (events.k8s.io/v1; series are patched).
- apiGroups: [events.k8s.io]
  resources: [events]
  verbs: [create, patch]
{{- end -}}
