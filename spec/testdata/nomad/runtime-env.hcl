job "env" {
  meta {
    owner = "ops"
  }
  group "echo" {
    count = 3
    network {
      port "http" {}
    }
    task "env" {
      driver = "wasm"
      config {
        module = "env@0.1.0"
        mode   = "http"
        args   = ["-index", "${NOMAD_ALLOC_INDEX}"]
      }
      env {
        INDEX  = "${NOMAD_ALLOC_INDEX}"
        ALLOC  = "${NOMAD_ALLOC_ID}"
        OWNER  = "${NOMAD_META_owner}"
        LISTEN = "${NOMAD_ADDR_http}"
        HOST   = "${NOMAD_HOST_PORT_http}"
        DC     = "${node.datacenter}"
        KERNEL = "${attr.kernel.name}"
        RACK   = "${meta.rack}"
        SAME   = "${STRATA_ALLOC_NAME}"
      }
    }
  }
}
