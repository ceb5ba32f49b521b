/**
 * Signals that arrive while `run` starts. Until a process listens for
 * SIGTERM, SIGINT or SIGHUP, the kernel's default for each is to end it on
 * the spot: a supervisor's SIGTERM sent just after the listeners came up
 * would kill the gateway before it could stop cleanly or write its log. So
 * `run` listens from its first moment and keeps what came: once the gateway
 * is up, a kept stop signal stops it (drained, logged) and a kept SIGHUP
 * reloads it. A second stop signal during the start ends the process at
 * once, as a second one does later (a start that hangs can still be ended).
 */

export type StopSignal = "SIGTERM" | "SIGINT";

export class StartupSignals {
  private stop: StopSignal | undefined;
  private hup = false;
  private readonly onTerm = (): void => this.stopSignal("SIGTERM");
  private readonly onInt = (): void => this.stopSignal("SIGINT");
  private readonly onHup = (): void => {
    this.hup = true;
  };

  constructor(private readonly proc: NodeJS.Process = process) {
    proc.on("SIGTERM", this.onTerm);
    proc.on("SIGINT", this.onInt);
    proc.on("SIGHUP", this.onHup);
  }

  /** Stops listening (the running gateway's own handlers take over) and hands over what came meanwhile. */
  handOver(): { stop: StopSignal | undefined; hup: boolean } {
    this.proc.removeListener("SIGTERM", this.onTerm);
    this.proc.removeListener("SIGINT", this.onInt);
    this.proc.removeListener("SIGHUP", this.onHup);
    return { stop: this.stop, hup: this.hup };
  }

  private stopSignal(signal: StopSignal): void {
    if (this.stop === undefined) {
      this.stop = signal;
      return;
    }
    console.error(`portcullis run: ${signal} again while starting: exiting now`);
    this.proc.exit(1);
  }
}
