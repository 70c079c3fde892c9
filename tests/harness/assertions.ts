import { SidecarError } from '../../sidecar/errors.js';

/** Awaits a promise that must reject with a SidecarError, and returns that error for its code and message. */
export async function rejection(promise: Promise<unknown>): Promise<SidecarError> {
  try {
    await promise;
  } catch (e) {
    expect(e).toBeInstanceOf(SidecarError);
    return e as SidecarError;
  }
  throw new Error('expected a rejection');
}
