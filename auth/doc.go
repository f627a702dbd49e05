// Package auth will hold the one refresh-safe token manager per process that
// every worker shares (issue 3): API-key credentials, and the password grant
// with single-use refresh tokens, at most one /token request in flight, and
// no second password attempt after natif rejects the credentials. SPEC section
// 5 states its rules. Until it lands, no command uploads.
package auth
