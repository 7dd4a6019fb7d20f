variable "count" {
  type    = number
  default = 2
}
variable "version" {
  type    = string
  default = "1.0.0"
}
job "vars" {
  group "g" {
    count = var.count
    network {
      port "http" {}
    }
    task "t" {
      driver = "wasm"
      config {
        module = "vars@${var.version}"
        mode   = "http"
      }
    }
  }
}
