job "hello" {
  group "web" {
  }
  group {
  }
}
