//! The merge patch that writes a whole status. A JSON merge patch keeps every field it does
//! not name, so a field the new status leaves out (a revision cleared, the last upstream
//! removed, a client deregistered) is named with `null`; otherwise the stored status would
//! keep telling what is no longer true.

use serde::Serialize;
use serde_json::Value;

/// The merge patch that turns the stored `previous` status into `new`.
pub fn replace_status<S: Serialize>(previous: Option<&S>, new: &S) -> Value {
    let mut value = serde_json::to_value(new).expect("status serializes");
    let before = previous.map(|p| serde_json::to_value(p).expect("status serializes"));
    if let (Some(fields), Some(Value::Object(old))) = (value.as_object_mut(), before) {
        for key in old.keys() {
            fields.entry(key.clone()).or_insert(Value::Null);
        }
    }
    serde_json::json!({ "status": value })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize, Default)]
    #[serde(rename_all = "camelCase")]
    struct Status {
        #[serde(skip_serializing_if = "Option::is_none")]
        revision: Option<String>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        uris: Vec<String>,
        ready: bool,
    }

    #[test]
    fn fields_left_out_are_removed_and_the_rest_written() {
        let before = Status {
            revision: Some("r1".into()),
            uris: vec!["https://a/cb".into()],
            ready: true,
        };
        let after = Status::default();
        let patch = replace_status(Some(&before), &after);
        assert_eq!(
            patch,
            serde_json::json!({"status": {"revision": null, "uris": null, "ready": false}})
        );
        assert_eq!(
            replace_status(None, &before),
            serde_json::json!({"status": {"revision": "r1", "uris": ["https://a/cb"], "ready": true}})
        );
    }
}
