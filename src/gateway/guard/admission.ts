/** An admitted connection: release it exactly once when the connection ends. */
export interface Admission {
  /** Address key: the address, or its IPv6 prefix; bans and per-IP caps count by it. */
  readonly key: string;
  readonly exempt: boolean;
  release(): void;
}
