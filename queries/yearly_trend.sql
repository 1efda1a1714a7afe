-- Per-year, per-hospital trend of cost and length of stay.
SELECT year,
       hospital,
       paillier_sum(cost)           AS total_cost,
       paillier_sum(length_of_stay) AS bed_days,
       COUNT(*)                     AS admissions
FROM admissions
GROUP BY year, hospital
ORDER BY year, hospital;
