job "nightly" {
  type = "batch"
  group "work" {
    task "run" {
      driver = "wasm"
      config {
        module = "run@1.0.0"
        mode   = "http"
      }
    }
  }
}
