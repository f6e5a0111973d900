import { execFileSync } from 'node:child_process';

/** Whether the openssl CLI is on PATH (tests that cross-check our DER with OpenSSL need it). */
export function hasOpenssl(): boolean {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
