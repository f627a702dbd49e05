// Package worker will hold the asynq handler of the "document:upload" task
// (issue 4): it streams one file to natif as a multipart request and moves it
// to the done folder with a .natif.json sidecar, or to the failed folder with
// a .error.json sidecar. SPEC sections 4 and 6 state its rules.
package worker
