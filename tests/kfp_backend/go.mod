// The backend conformance harness. This file only marks the module root: each supported KFP
// version is built with its own pins, `go build -modfile=<build>/<version>/go.mod`, made by
// tests/kfp_backend/harness.py from pins/<version>.mod.
module kfpbackend

go 1.24.2
