package com.happyphone.hpl;

/** A failed call into the engine. {@link #status} is the C API's hpl_status number. */
public class HplException extends RuntimeException {
  public static final int INVALID_ARGUMENT = 1, IO = 2, MODEL = 3, CONTEXT_FULL = 4,
      OUT_OF_MEMORY = 5, FAILED_STATE = 6, SESSION_MISMATCH = 7, BUSY = 8, WOULD_DEADLOCK = 9,
      INTERNAL = 10, NOT_FOUND = 11, TIMEOUT = 12;

  public final int status;

  public HplException(int status, String message) {
    super(message);
    this.status = status;
  }
}
