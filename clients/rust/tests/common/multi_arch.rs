//! An image index of two instances added to a [`Layout`](super::Layout).

use std::fs;

use serde_json::{json, Value};

use super::{host_architecture, Blob, Layout, OCI_CONFIG, OCI_MANIFEST};

pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// An image index added to a [`Layout`] under the ref name `multi`.
pub struct MultiArch {
    pub index: Blob,
    /// (os, architecture, manifest) per instance; the host's first.
    pub instances: Vec<(String, String, Blob)>,
}

impl Layout {
    /// `oci:DIR:multi`.
    pub fn multi_reference(&self) -> String {
        format!("oci:{}:multi", self.path().display())
    }

    /// Adds an index of two instances: the host's image and one for another architecture
    /// (its own config, the same layers), tagged `multi` beside `latest`.
    pub fn add_multi_arch(&self) -> MultiArch {
        let other_arch = if host_architecture() == "arm64" {
            "amd64"
        } else {
            "arm64"
        };
        let mut other_config = self.config_json.clone();
        other_config["architecture"] = json!(other_arch);
        let other_config = Blob::new(OCI_CONFIG, serde_json::to_vec(&other_config).unwrap());
        let manifest_json = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": other_config.descriptor(),
            "layers": self.layers.iter().map(Blob::descriptor).collect::<Vec<_>>(),
        });
        let other_manifest = Blob::new(OCI_MANIFEST, serde_json::to_vec(&manifest_json).unwrap());
        let instances = vec![
            (
                "linux".to_string(),
                host_architecture().to_string(),
                self.manifest.clone(),
            ),
            (
                "linux".to_string(),
                other_arch.to_string(),
                other_manifest.clone(),
            ),
        ];
        let entries: Vec<Value> = instances
            .iter()
            .map(|(os, arch, blob)| {
                let mut d = blob.descriptor();
                d["platform"] = json!({ "os": os, "architecture": arch });
                d
            })
            .collect();
        let index_json =
            json!({ "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries });
        let index = Blob::new(OCI_INDEX, serde_json::to_vec(&index_json).unwrap());
        for blob in [&other_config, &other_manifest, &index] {
            fs::write(self.blob_path(&blob.digest), &blob.bytes).unwrap();
        }
        let top_path = self.path().join("index.json");
        let mut top: Value = serde_json::from_slice(&fs::read(&top_path).unwrap()).unwrap();
        let mut entry = index.descriptor();
        entry["annotations"] = json!({ "org.opencontainers.image.ref.name": "multi" });
        top["manifests"].as_array_mut().unwrap().push(entry);
        fs::write(&top_path, serde_json::to_vec(&top).unwrap()).unwrap();
        MultiArch { index, instances }
    }
}
