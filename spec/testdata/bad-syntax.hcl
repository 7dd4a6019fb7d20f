job "hello" {
  group "web" {
    count = 
    task "hello" {
      driver = "wasm"
    }
  }
}
