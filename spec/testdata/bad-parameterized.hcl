job "transcode" {
  type = "batch"
  parameterized {
    payload       = "sometimes"
    meta_required = ["input"]
    meta_optional = ["input"]
  }
  group "g" {
    task "t" {
      driver = "wasm"
      config {
        module = "transcode@1.0.0"
        mode   = "command"
      }
      dispatch_payload {
        file = "../escape.txt"
      }
    }
  }
}
