job "hello" {
  group "web" {
    task "hello" {
      config {
        module = "hello@0.1.0"
        mode   = "http"
      }
    }
  }
}
