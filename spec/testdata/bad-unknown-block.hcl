job "hello" {
  group "web" {
    # Nomad knows constraint; this version does not yet.
    constraint {
      attribute = "${attr.kernel.name}"
      value     = "linux"
    }
    task "hello" {
      driver = "wasm"
      config {
        module = "hello@0.1.0"
        mode   = "http"
      }
    }
  }
}
