package coordinator

import "github.com/strata-run/strata/coordinator/structs"

// Transitional: the records moved to package structs, and the code of
// this module uses structs.X, except edge's tests (docker_driver_test.go,
// download_test.go, link_test.go), which are outside this change. Remove
// these three once they name structs.X.
type (
	Alloc             = structs.Alloc
	JobAllocsResponse = structs.JobAllocsResponse
	JoinTokenRequest  = structs.JoinTokenRequest
)
