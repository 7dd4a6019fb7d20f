job "edge" {
  datacenters = ["eu-1", "eu-2"]
  constraint {
    attribute = "${attr.kernel.name}"
    value     = "linux"
  }
  affinity {
    attribute = "${node.datacenter}"
    value     = "eu-1"
    weight    = 50
  }
  spread {
    attribute = "${node.datacenter}"
    target "eu-1" {
      percent = 60
    }
    target "eu-2" {
      percent = 40
    }
  }
  group "g" {
    count = 5
    constraint {
      operator = "distinct_hosts"
      value    = "true"
    }
    task "t" {
      driver = "wasm"
      config {
        module = "edge@1.0.0"
        mode   = "command"
      }
    }
  }
}
