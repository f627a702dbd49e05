// Package worker uploads one queued file to natif: the asynq task
// "document:upload", its payload, the handler that streams the file as a
// multipart request through the shared auth source, the table that turns
// natif's answers into what happens next, and the archive that moves the file
// to the done folder (with <file>.natif.json) or the failed folder (with
// <file>.error.json). SPEC sections 4 and 6 are its contract.
//
// Every queued file ends in exactly one of the two folders. The order of the
// steps keeps that true across crashes: the upload is recorded in the
// completion ledger (by SHA-256) before the file moves, so a task delivered
// again after a crash moves the file without uploading it again; a sidecar is
// written before its file moves, so a file in done always has one.
package worker
