//! HorizontalPodAutoscaler `x` (autoscaling/v2), rendered when `spec.autoscaling` is set.

use super::owner::Owner;
use k8s_openapi::api::autoscaling::v2::{
    CrossVersionObjectReference, HorizontalPodAutoscaler, HorizontalPodAutoscalerSpec, MetricSpec,
    MetricTarget, ResourceMetricSource,
};

/// Autoscaling bounds and targets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AutoscalingInput {
    pub min_replicas: i32,
    pub max_replicas: i32,
    pub target_cpu_percent: Option<i32>,
    pub target_memory_percent: Option<i32>,
}

fn resource_metric(name: &str, percent: i32) -> MetricSpec {
    MetricSpec {
        type_: "Resource".into(),
        resource: Some(ResourceMetricSource {
            name: name.into(),
            target: MetricTarget {
                type_: "Utilization".into(),
                average_utilization: Some(percent),
                ..Default::default()
            },
        }),
        ..Default::default()
    }
}

/// Renders the HPA targeting Deployment `x`. Without any target, CPU at 80% is used.
pub fn render_hpa(owner: &Owner, input: &AutoscalingInput) -> HorizontalPodAutoscaler {
    let mut metrics = Vec::new();
    if let Some(cpu) = input.target_cpu_percent {
        metrics.push(resource_metric("cpu", cpu));
    }
    if let Some(memory) = input.target_memory_percent {
        metrics.push(resource_metric("memory", memory));
    }
    if metrics.is_empty() {
        metrics.push(resource_metric("cpu", 80));
    }
    HorizontalPodAutoscaler {
        metadata: owner.meta(owner.name.clone(), "auth-server"),
        spec: Some(HorizontalPodAutoscalerSpec {
            scale_target_ref: CrossVersionObjectReference {
                api_version: Some("apps/v1".into()),
                kind: "Deployment".into(),
                name: owner.name.clone(),
            },
            min_replicas: Some(input.min_replicas),
            max_replicas: input.max_replicas,
            metrics: Some(metrics),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::owner::fixtures::owner;

    #[test]
    fn hpa_targets_the_deployment_with_requested_metrics() {
        let hpa = render_hpa(
            &owner(),
            &AutoscalingInput {
                min_replicas: 3,
                max_replicas: 20,
                target_cpu_percent: Some(70),
                target_memory_percent: Some(80),
            },
        );
        let spec = hpa.spec.unwrap();
        assert_eq!(spec.scale_target_ref.name, "dev");
        assert_eq!(spec.scale_target_ref.kind, "Deployment");
        assert_eq!((spec.min_replicas, spec.max_replicas), (Some(3), 20));
        let metrics = spec.metrics.unwrap();
        let names: Vec<_> = metrics
            .iter()
            .map(|m| m.resource.as_ref().unwrap().name.as_str())
            .collect();
        assert_eq!(names, ["cpu", "memory"]);
        assert_eq!(
            metrics[0]
                .resource
                .as_ref()
                .unwrap()
                .target
                .average_utilization,
            Some(70)
        );
    }

    #[test]
    fn hpa_without_targets_scales_on_cpu() {
        let hpa = render_hpa(
            &owner(),
            &AutoscalingInput {
                min_replicas: 1,
                max_replicas: 2,
                target_cpu_percent: None,
                target_memory_percent: None,
            },
        );
        let metrics = hpa.spec.unwrap().metrics.unwrap();
        assert_eq!(metrics.len(), 1);
        assert_eq!(
            metrics[0]
                .resource
                .as_ref()
                .unwrap()
                .target
                .average_utilization,
            Some(80)
        );
    }
}
