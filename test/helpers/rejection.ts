import { expect } from 'vitest';
import { FtError } from '../../src/errors.js';

/** The FtError a promise rejects with (the test fails if it resolves, or rejects with something else). */
export async function rejection(promise: Promise<unknown>): Promise<FtError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(FtError);
  return error as FtError;
}
