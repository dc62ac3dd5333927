/*
 * RFC 3339 date-time with a mandatory zone ("Z" or ±hh:mm) that names a real calendar date: the regular
 * expression checks the shape, the rest checks ranges, so 2023-02-30 or 24:00 are refused. Leap seconds
 * (:60) are refused too, as most clocks that publishers use cannot produce them.
 */
const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.\d{1,9})?(?:[Zz]|[+-](\d{2}):(\d{2}))$/;

const daysInMonth = (year: number, month: number): number => new Date(Date.UTC(year, month, 0)).getUTCDate();

export function isRfc3339DateTime(value: string): boolean {
  const match = RFC3339.exec(value);
  if (!match) return false;
  const [year, month, day, hour, minute, second, offsetHour = 0, offsetMinute = 0] = match.slice(1).map((part) =>
    part === undefined ? undefined : Number(part),
  ) as number[];
  return (
    month! >= 1 && month! <= 12 &&
    day! >= 1 && day! <= daysInMonth(year!, month!) &&
    hour! <= 23 && minute! <= 59 && second! <= 59 &&
    offsetHour <= 23 && offsetMinute <= 59
  );
}
