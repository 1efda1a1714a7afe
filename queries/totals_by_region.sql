-- Total cost, bed-days and diabetic patients per region, over every hospital's admissions.
SELECT region,
       paillier_sum(cost)           AS total_cost,
       paillier_sum(length_of_stay) AS bed_days,
       paillier_count(diabetic)     AS diabetic_patients,
       COUNT(*)                     AS admissions
FROM admissions
GROUP BY region
ORDER BY region;
