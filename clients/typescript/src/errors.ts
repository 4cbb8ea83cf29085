/**
 * The client's errors, thrown only in strict mode (`new PdpClient(..., { strict: true })`).
 *
 * Without strict mode the client never throws for a failed call: it answers "denied" with one of
 * the reason codes below, so that a front-end that forgets a `try` still fails closed (R-DEC-2).
 * The same codes and messages as the Python client (`pdp.client`).
 *
 *     PdpError                 any failed call; `code` and French `message`
 *     ├── PdpUnavailable       no connection could be made
 *     ├── PdpTimeout           no answer within the timeout
 *     └── PdpResponseError     the server answered, but not with a decision
 *         └── PdpBadResponse   the answer was not the documented JSON
 */

/** Reason codes the client makes up itself (the server's own codes are passed through). */
export const UNAVAILABLE = "PDP_UNAVAILABLE";
export const TIMEOUT = "PDP_TIMEOUT";
export const BAD_RESPONSE = "PDP_BAD_RESPONSE";
export const CLIENT_ERROR = "PDP_CLIENT_ERROR";

export const MESSAGES: Readonly<Record<string, string>> = {
  [UNAVAILABLE]: "Le service d'habilitation est injoignable : accès refusé.",
  [TIMEOUT]: "Le service d'habilitation n'a pas répondu à temps : accès refusé.",
  [BAD_RESPONSE]: "Réponse illisible du service d'habilitation : accès refusé.",
  [CLIENT_ERROR]: "Erreur interne du client d'habilitation : accès refusé.",
};

/** A call that did not end in a decision: `code` is stable, `message` is French. */
export class PdpError extends Error {
  readonly code: string;
  /** The French message alone (`message`, as any Error's, is "CODE: text"). */
  readonly text: string;
  readonly status: number | null;
  readonly detail: string;

  constructor(code: string, text: string, status: number | null = null, detail = "") {
    super(`${code}: ${text}`);
    this.name = new.target.name;
    this.code = code;
    this.text = text;
    this.status = status;
    this.detail = detail;
  }
}

/** No connection to the decision point (refused, reset, name unknown). */
export class PdpUnavailable extends PdpError {
  constructor(detail = "") {
    super(UNAVAILABLE, MESSAGES[UNAVAILABLE] ?? "", null, detail);
  }
}

/** The decision point did not answer within the client's timeout. */
export class PdpTimeout extends PdpError {
  constructor(detail = "") {
    super(TIMEOUT, MESSAGES[TIMEOUT] ?? "", null, detail);
  }
}

/** The decision point answered with an error (its `code`, `message` and HTTP status). */
export class PdpResponseError extends PdpError {}

/** The answer was not the documented JSON (a proxy's HTML page, a cut body…). */
export class PdpBadResponse extends PdpResponseError {
  constructor(status: number | null, detail = "") {
    super(BAD_RESPONSE, MESSAGES[BAD_RESPONSE] ?? "", status, detail);
  }
}
