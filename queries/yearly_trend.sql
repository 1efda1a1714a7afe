-- Per-year, per-hospital trend of cost and length of stay, and the cost including a bed-day
-- levy of 35 per day (a linear expression, evaluated on the ciphertexts row by row).
SELECT year,
       hospital,
       SUM(cost)                       AS total_cost,
       AVG(cost)                       AS mean_cost,
       SUM(cost + 35 * length_of_stay) AS cost_with_levy,
       SUM(length_of_stay)             AS bed_days,
       COUNT(*)                        AS admissions
FROM admissions
GROUP BY year, hospital
ORDER BY year, hospital;
