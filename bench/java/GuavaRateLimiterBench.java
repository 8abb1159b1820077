// Guava's RateLimiter.tryAcquire(), timed like resilience_bench's BM_GcraAcquire / BM_GcraReject
// (single thread, one shared limiter, ns per call), for bench/compare_guava.sh.
//
//   admit   RateLimiter.create(1e12): the next permit is always due, every call succeeds
//           (synchronized + Stopwatch read + a few double operations).
//   reject  RateLimiter.create(1e-3): one permit per 1,000 s, spent before timing; every call
//           fails (synchronized + Stopwatch read + the comparison).
//
// Each path is warmed up (JIT: C2 compiles the loop) and then timed in `rounds` batches of
// `ops` calls; the line printed per path is the median batch in ns/op. Results are folded into
// a checksum that is printed, so the JIT cannot drop the calls.
//
//   javac -cp /usr/share/java/guava.jar -d OUT GuavaRateLimiterBench.java
//   java -cp /usr/share/java/guava.jar:OUT GuavaRateLimiterBench [ops] [rounds]
import com.google.common.util.concurrent.RateLimiter;
import java.util.Arrays;

public final class GuavaRateLimiterBench {
  private static long sink;

  private static double batch(RateLimiter limiter, long ops) {
    long admitted = 0;
    final long start = System.nanoTime();
    for (long i = 0; i < ops; i++) {
      if (limiter.tryAcquire()) admitted++;
    }
    final long elapsed = System.nanoTime() - start;
    sink += admitted;
    return (double) elapsed / ops;
  }

  private static double median(double[] xs) {
    final double[] s = xs.clone();
    Arrays.sort(s);
    final int n = s.length;
    return n % 2 == 1 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
  }

  private static double run(String name, RateLimiter limiter, long ops, int rounds,
                            boolean expectAdmit) {
    for (int i = 0; i < 5; i++) batch(limiter, ops);  // warm-up
    final double[] ns = new double[rounds];
    final long before = sink;
    for (int r = 0; r < rounds; r++) ns[r] = batch(limiter, ops);
    final long admitted = sink - before;
    final long expected = expectAdmit ? ops * rounds : 0;
    if (admitted != expected) {
      System.err.println(name + ": " + admitted + " admitted, expected " + expected);
      System.exit(1);
    }
    final double m = median(ns);
    System.out.printf("guava_%s_ns_per_op %.2f%n", name, m);
    return m;
  }

  public static void main(String[] args) {
    final long ops = args.length > 0 ? Long.parseLong(args[0]) : 20_000_000L;
    final int rounds = args.length > 1 ? Integer.parseInt(args[1]) : 5;
    if (ops <= 0 || rounds <= 0) {
      System.err.println("usage: GuavaRateLimiterBench [ops > 0] [rounds > 0]");
      System.exit(2);
    }
    run("admit", RateLimiter.create(1e12), ops, rounds, true);
    final RateLimiter slow = RateLimiter.create(1e-3);
    if (!slow.tryAcquire()) {
      System.err.println("reject: the first permit was not granted");
      System.exit(1);
    }
    run("reject", slow, ops, rounds, false);
    System.out.println("checksum " + sink);
  }
}
