package worker

import (
	"errors"
	"net/http"

	"github.com/natif-uploader/natif-uploader/auth"
)

// Class is what happens to a task after an answer or an error. This table is
// the one place that decides it; the README shows it.
type Class int

const (
	// Success: the server has the file.
	Success Class = iota
	// Transient: retry with back-off, spending one of the task's retries.
	Transient
	// RateLimited: retry later without spending a retry (natif's page limits).
	RateLimited
	// Permanent: this file fails; it goes to the failed folder.
	Permanent
	// Account: nothing is wrong with the file; the account is (quota,
	// scope, credentials). No file fails: the queue pauses.
	Account
)

func (c Class) String() string {
	return [...]string{"success", "transient", "rate-limited", "permanent", "account"}[c]
}

// statusClass maps natif's HTTP answers to classes. A 401 reaches this table
// only after auth.Transport refreshed and retried once and natif still said
// 401 (a clock far off, a token natif does not like): worth a retry later.
var statusClass = map[int]Class{
	http.StatusUnauthorized:          Transient,
	http.StatusPaymentRequired:       Account, // quota of the plan used up
	http.StatusForbidden:             Account, // credentials not authorised (scope)
	http.StatusRequestTimeout:        Transient,
	http.StatusTooEarly:              Transient,
	http.StatusTooManyRequests:       RateLimited,
	http.StatusInternalServerError:   Transient,
	http.StatusBadGateway:            Transient,
	http.StatusServiceUnavailable:    Transient,
	http.StatusGatewayTimeout:        Transient,
	http.StatusBadRequest:            Permanent,
	http.StatusNotFound:              Permanent,
	http.StatusRequestEntityTooLarge: Permanent,
	http.StatusUnsupportedMediaType:  Permanent,
	http.StatusUnprocessableEntity:   Permanent,
}

// ClassifyStatus returns the class of an HTTP status: 2xx success, the table
// above, other 4xx permanent, other 5xx transient.
func ClassifyStatus(status int) Class {
	if status >= 200 && status < 300 {
		return Success
	}
	if c, ok := statusClass[status]; ok {
		return c
	}
	if status >= 500 {
		return Transient
	}
	return Permanent
}

// ClassifyError returns the class of an error that came instead of an
// answer: rejected credentials are account-level; everything else (network,
// timeouts) is transient.
func ClassifyError(err error) Class {
	if errors.Is(err, auth.ErrCredentialsRejected) {
		return Account
	}
	return Transient
}

// AccountHint says what an operator does about an account-level answer
// (402, 403); empty for other statuses. It leads the pause's reason in the
// log, /readyz and status.
func AccountHint(status int) string {
	switch status {
	case http.StatusPaymentRequired:
		return "natif's page quota of this plan is used up: raise the plan or wait for the next quota period; uploads resume by themselves at the next probe"
	case http.StatusForbidden:
		return "natif refuses uploads with these credentials: check that NATIF_SCOPES holds capturing_write and that the natif user or API key has the role to upload, then send SIGHUP"
	}
	return ""
}
