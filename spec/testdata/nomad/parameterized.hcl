job "transcode" {
  type = "batch"
  parameterized {
    payload       = "required"
    meta_required = ["input"]
  }
  group "g" {
    task "t" {
      driver = "wasm"
      config {
        module = "transcode@1.0.0"
        mode   = "command"
      }
    }
  }
}
