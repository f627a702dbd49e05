// Package auth holds the one token manager per process that every worker
// shares, and the HTTP transport that puts its token on each request.
//
// Two kinds of credentials satisfy Source: an API key ("Authorization: ApiKey
// <secret>", no token endpoint; a 401 means the key is expired or revoked, so
// it is permanent), and the password grant (Manager), which logs in at
// POST /token and refreshes with single-use refresh tokens.
//
// natif, like Keycloak with refresh-token rotation, logs the whole session out
// when a refresh token is presented twice. The Manager is built so that this
// cannot come from us:
//
//   - I1 at most one /token request is in flight per process (one flight at a time);
//   - I2 a refresh token is sent at most once unless it provably never left
//     the process (a dial error, or httptrace saw no write); any unknown
//     outcome burns it, and the next step is the password grant;
//   - I3 new tokens are stored, under a generation that only grows, before any
//     caller sees them;
//   - I4 after natif rejects the credentials no password is sent again until
//     they change or an operator logs in; password grants are at least
//     MinPasswordInterval apart, whatever happens;
//   - I5 the /token call runs on its own context and timeout: a caller that
//     gives up stops waiting, it never cancels the request half-way;
//   - I6 a 401 refreshes only if its token's generation is still current, and
//     the transport retries a request at most once after a 401;
//   - I7 expiries come from each answer, measured from the send time, and the
//     access token is refreshed ahead of its expiry;
//   - I8 a refresh answer without a refresh token keeps the old one (RFC 6749
//     section 6: a server that issues none did not rotate);
//   - I9 no secret reaches a log line, an error string or a metric.
package auth
