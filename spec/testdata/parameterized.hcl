job "transcode" {
  type = "batch"
  meta {
    quality = "high"
  }
  parameterized {
    meta_required = ["input"]
    meta_optional = ["quality"]
  }
  group "g" {
    task "t" {
      driver = "wasm"
      config {
        module = "transcode@1.0.0"
        mode   = "command"
      }
      env {
        INPUT = "${NOMAD_META_input}"
      }
      dispatch_payload {
        file = "input/params.json"
      }
    }
  }
}
